"""The protective stop: ``place_stop`` / ``replace_stop`` make the resting stop cover what is
asked (placing, replacing or cancelling as the ledger's open stop requires, waiting for the
broker's word), ``cancel_stop`` removes it. After each, done or failed, the strategy is told
what really rests (``reports.report_stop``, called by the lanes' handler)."""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal

from magellan_core.clock import Deadline
from magellan_daemon.domain import ClientOrderId, client_order_id
from magellan_daemon.execution.router.context import PRE_BROKER, RouteContext
from magellan_daemon.ledger.store import OrderRow
from strategies.api.model import Intent

log = logging.getLogger(__package__)  # the router's logger: operators and notify match it
_STOP_SIZING = frozenset({"place_stop", "replace_stop"})
# A protective stop cannot rest while the position's own entry buy still works (Alpaca's
# wash-trade protection refuses it): wait this long for the entry to finish, then cancel its
# remainder, because protecting the shares held matters more than buying the last ones.
ENTRY_SETTLE_SECONDS = 120.0


def superseded(earlier: Intent | None, later: Intent | None) -> bool:
    """Whether ``earlier`` sizes a stop and ``later``, the very next item of its lane, sizes
    the same strategy's stop again (nothing in between that depends on the first one). Only
    the later one is sent: each replace waits for the broker, and a chain of them would leave
    shares unprotected for as long."""
    if earlier is None or earlier.action not in _STOP_SIZING:
        return False
    return (
        later is not None
        and later.action in _STOP_SIZING
        and later.strategy == earlier.strategy
        and later.symbol == earlier.symbol
        and (later.stop_price is not None or earlier.stop_price is None)  # keeps a price
    )


async def set_stop(ctx: RouteContext, intent: Intent, intent_id: int | None) -> None:
    """Make the resting stop cover ``intent.qty`` (at most the shares not held by other
    sells) at its stop price: place, replace, cancel or leave it."""
    current = await _current_stop(ctx, intent)
    held = int(ctx.ledger.position_qty(intent.strategy, intent.symbol))
    others, _ = ctx.held_by_orders(intent.strategy, intent.symbol)
    want = min(intent.qty or 0, held - int(others))
    price = _cents(intent.stop_price)
    if current is None:
        if want <= 0:
            ctx.mark(intent_id, "blocked", f"no shares to protect (holds {held})")
            return
        await _settle_entry(ctx, intent)
        await ctx.path.send(_new_stop(ctx, intent, intent_id, want, price, None))
        ctx.mark(intent_id, "sent", "")
        return
    if want <= 0:
        outcome = await ctx.path.cancel(current)
        ctx.mark(intent_id, "sent", f"stop cancel {outcome} (no shares left)")
        return
    price = price or current.stop_price
    if want == int(current.qty - current.filled_qty) and price == current.stop_price:
        ctx.mark(intent_id, "sent", "stop unchanged")
        return
    new = _new_stop(ctx, intent, intent_id, want, price, current.client_order_id)
    outcome = await ctx.path.replace(current, new, qty=want, stop_price=price)
    ctx.mark(intent_id, "sent" if outcome == "replaced" else "failed", f"replace {outcome}")


async def cancel_stop(ctx: RouteContext, intent: Intent, intent_id: int | None) -> None:
    """Cancel the resting stop, if there is one."""
    current = await _current_stop(ctx, intent)
    if current is None:
        ctx.mark(intent_id, "sent", "no open stop")
        return
    outcome = await ctx.path.cancel(current)
    ctx.mark(intent_id, "sent" if outcome != "refused" else "failed", f"cancel {outcome}")


async def _current_stop(ctx: RouteContext, intent: Intent) -> OrderRow | None:
    """The open stop row, after resolving one whose submit is still unknown."""
    stop = ctx.open_stop(intent.strategy, intent.symbol)
    if stop is not None and stop.status in PRE_BROKER:
        found = await ctx.path.lookup(stop)
        if found.missing:
            ctx.path.mark(stop.client_order_id, "not_found")
        stop = ctx.open_stop(intent.strategy, intent.symbol)
    return stop


def _next_stop_id(ctx: RouteContext, intent: Intent) -> ClientOrderId:
    base = client_order_id(intent.strategy, intent.symbol, intent.signal_time, "ps")
    return client_order_id(
        intent.strategy,
        intent.symbol,
        intent.signal_time,
        "ps",
        seq=ctx.ledger.count_orders_like(base) + 1,
    )


def _new_stop(
    ctx: RouteContext,
    intent: Intent,
    intent_id: int | None,
    qty: int,
    price: Decimal | None,
    replaces: ClientOrderId | None,
) -> OrderRow:
    """The row of a new protective stop (GTC), written before its POST or PATCH."""
    return ctx.new_order(
        intent,
        intent_id,
        cid=_next_stop_id(ctx, intent),
        side="sell",
        qty=qty,
        order_type="stop",
        time_in_force="gtc",
        stop_price=price,
        replaces=replaces,
    )


async def _settle_entry(ctx: RouteContext, intent: Intent) -> None:
    """Wait for the strategy's working entry on the symbol to finish (see
    ``ENTRY_SETTLE_SECONDS``); cancel what is left of it after that."""
    deadline = Deadline(ctx.clock, ENTRY_SETTLE_SECONDS)
    while True:
        entries = [
            o
            for o in ctx.open_orders(intent.strategy, intent.symbol)
            if o.side == "buy" and o.status not in PRE_BROKER
        ]
        if not entries:
            return
        if deadline.expired():
            for entry in entries:
                outcome = await ctx.path.cancel(entry)
                log.warning(
                    "entry %s still working %g s after its first fill: rest cancelled "
                    "(%s) so the shares held can be protected",
                    entry.client_order_id,
                    ENTRY_SETTLE_SECONDS,
                    outcome,
                )
            return
        await asyncio.sleep(min(0.25, deadline.remaining()))


def _cents(price: float | None) -> Decimal | None:
    if price is None:
        return None
    return Decimal(str(round(price, 2 if price >= 1 else 4)))
