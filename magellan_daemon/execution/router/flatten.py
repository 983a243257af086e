"""Flatten: cancel a strategy's open orders on a symbol and sell its own shares (never
another strategy's) at market. The operator's flatten runs one per symbol on their lanes and
sums them up; the position guard's runs one symbol. Like every exit, it skips the gates."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from magellan_daemon.domain import OrderStatus
from magellan_daemon.execution.router.context import FLATTEN_LEG, PRE_BROKER, RouteContext, Work
from magellan_daemon.execution.router.exits import sellable
from magellan_daemon.ledger.store import Ledger
from strategies.api.model import Intent

log = logging.getLogger(__package__)  # the router's logger: operators and notify match it

Outcome = dict[str, list]  # canceled, sells, refused, errors


def symbols_to_flatten(ledger: Ledger, strategy: str) -> list[str]:
    """The symbols the strategy has open orders or shares on, sorted."""
    symbols = {o.symbol for o in ledger.orders(strategy=strategy, open_only=True)}
    symbols |= {p.symbol for p in ledger.positions(strategy) if p.qty > 0}
    return sorted(symbols)


def summed(strategy: str, parts: Iterable[object]) -> Outcome:
    """The outcomes of a strategy's symbol flattens as one (a part that is no outcome was a
    symbol whose flatten failed), logged as one line."""
    result = _empty()
    for part in parts:
        if not isinstance(part, dict):
            result["errors"].append("a symbol's flatten failed (see the log)")
            continue
        for key, values in part.items():
            result[key].extend(values)
    log.warning(
        "flatten   %-12s canceled %d orders, %d sells, %d refused, %d errors",
        strategy,
        len(result["canceled"]),
        len(result["sells"]),
        len(result["refused"]),
        len(result["errors"]),
    )
    return result


async def flatten_symbol(ctx: RouteContext, work: Work) -> Outcome:
    """Cancel the strategy's open orders on the symbol, then sell what is sellable with the
    work's leg and time in force; returns what was done."""
    strategy, symbol = work.strategy, work.symbol
    result = _empty()
    for order in ctx.open_orders(strategy, symbol):
        outcome = await ctx.path.cancel(order)
        if outcome in ("canceled", "gone", "filled"):
            result["canceled"].append(order.client_order_id)
        else:
            result["errors"].append(f"cancel {order.client_order_id}: {outcome}")
    if result["errors"] and work.flatten_leg != FLATTEN_LEG:
        # The position guard's flatten sells nothing beside an order it could not cancel
        # (two sells would work for one position); it tries again after its backoff. The
        # operator's flatten sells what it can at once.
        return result
    free, why = sellable(ctx, strategy, symbol)
    if free <= 0:
        if int(ctx.ledger.position_qty(strategy, symbol)) > 0:
            result["errors"].append(f"{symbol}: nothing sellable ({why})")
        return result
    now = ctx.clock.now()
    intent = Intent(
        strategy=strategy,
        symbol=symbol,
        action="sell",
        leg=work.flatten_leg,
        signal_time=now.replace(second=0, microsecond=0),
        reason=work.flatten_leg,
        qty=free,
    )
    cid, working, _ = ctx.attempt(intent)
    row = working or ctx.new_order(
        intent, None, cid=cid, side="sell", qty=free, time_in_force=work.time_in_force
    )
    row = await ctx.path.send(row)
    entry = {"symbol": symbol, "qty": str(row.qty), "client_order_id": cid}
    if row.status == OrderStatus.REJECTED:
        result["refused"].append({**entry, "status": row.status})
        result["errors"].append(f"sell {symbol} refused by the broker")
    elif row.status in PRE_BROKER:
        result["errors"].append(f"sell {symbol}: outcome unknown ({cid})")
    else:
        result["sells"].append(entry)
    return result


def _empty() -> Outcome:
    return {"canceled": [], "sells": [], "refused": [], "errors": []}
