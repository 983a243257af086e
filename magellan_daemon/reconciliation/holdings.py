"""The ledger's view of what a strategy holds, for ``Strategy.sync`` after a restart."""

from __future__ import annotations

from magellan_daemon.ledger.store import Ledger
from strategies.api.model import HoldingView, OpenOrderView


def holding_views(ledger: Ledger, strategy: str) -> dict[str, HoldingView]:
    """The ledger's view of a strategy's holdings: its positions, its open orders and its
    unsent next-open intents, per symbol."""
    positions = {p.symbol: int(p.qty) for p in ledger.positions(strategy)}
    orders: dict[str, list[OpenOrderView]] = {}
    for o in ledger.orders(strategy=strategy, open_only=True):
        orders.setdefault(o.symbol, []).append(
            OpenOrderView(
                leg=o.leg,
                signal_time=o.signal_time,
                side=o.side,  # type: ignore[arg-type]
                remaining=int(o.qty - o.filled_qty),
                stop_price=None if o.stop_price is None else float(o.stop_price),
            )
        )
    for row in ledger.intents("pending"):
        intent = row.intent
        if intent.strategy != strategy or intent.action not in ("buy", "sell"):
            continue
        orders.setdefault(intent.symbol, []).append(
            OpenOrderView(
                leg=intent.leg,
                signal_time=intent.signal_time,
                side=intent.action,
                remaining=intent.qty or 0,
            )
        )
    return {
        symbol: HoldingView(
            symbol=symbol,
            position=positions.get(symbol, 0),
            open_orders=tuple(orders.get(symbol, ())),
        )
        for symbol in sorted(set(positions) | set(orders))
    }
