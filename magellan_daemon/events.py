"""The one door for broker news: stream events, submit replies and reconciliation alike.

``EventSink.apply`` writes the event to the ledger (exactly once), logs every order state
change in one fixed shape, rewrites the day's CSV trade log after a fill, and tells the
owning strategy what happened to its order (fill increments; orders that ended unfilled).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from magellan_daemon.domain import BrokerEvent
from magellan_daemon.ledger.store import Applied, Ledger, OrderRow, session_date
from magellan_daemon.ledger.tradelog import write_day
from magellan_daemon.metrics import Metrics
from strategies.model import Intent, OrderUpdate

log = logging.getLogger(__name__)
_ENDED_UNFILLED = {"canceled": "canceled", "expired": "expired", "rejected": "rejected"}

Notify = Callable[[str, OrderUpdate], Awaitable[None]]


def order_line(verb: str, order: OrderRow, qty: Decimal, price: Decimal | None) -> str:
    """The one shape of every order state-change line: verb, strategy, symbol, qty, price,
    client_order_id."""
    shown = "-" if price is None else f"{price:f}"
    return (
        f"{verb:<9} {order.strategy:<12} {order.symbol:<6} {order.side:<4} qty={qty:f} "
        f"price={shown} cid={order.client_order_id}"
    )


def log_fields(order: OrderRow, event: str) -> dict[str, object]:
    """Structured fields carried by order log records (journald fields under systemd)."""
    return {
        "STRATEGY": order.strategy,
        "SYMBOL": order.symbol,
        "CLIENT_ORDER_ID": order.client_order_id,
        "ORDER_ID": order.broker_order_id or "",
        "EVENT": event,
    }


class EventSink:
    """Applies broker events and fans them out to the strategies."""

    def __init__(
        self, ledger: Ledger, log_dir: Path, notify: Notify, metrics: Metrics | None = None
    ) -> None:
        self._ledger = ledger
        self._metrics = metrics
        self._log_dir = log_dir
        self._notify = notify
        self.applied = 0
        self.duplicates = 0
        self.unknown = 0

    async def apply(self, event: BrokerEvent) -> Applied:
        """Apply one event; returns what the ledger did with it."""
        applied = self._ledger.apply_event(event)
        if applied.order is None:
            self.unknown += 1
            log.warning(
                "event %s for order %s (%s) that is not ours: ignored",
                event.event,
                event.client_order_id,
                event.symbol,
            )
            return applied

        if applied.duplicate:
            self.duplicates += 1
            return applied
        self.applied += 1
        order = applied.order
        extra = {"fields": log_fields(order, event.event)}
        if applied.invalid:
            log.error(
                "invalid transition: %s (%s)", applied.invalid, order.client_order_id, extra=extra
            )
        if self._metrics is not None:
            if applied.status_changed:
                self._metrics.orders.labels(order.strategy, order.status).inc()
                if order.status == "rejected":
                    self._metrics.rejects.labels(order.strategy).inc()
            if applied.fill is not None:
                self._metrics.fills.labels(order.strategy).inc()
        if applied.fill is not None:
            fill = applied.fill
            log.info(order_line("filled", order, fill.qty, fill.price), extra=extra)
            write_day(self._ledger, self._log_dir, order.strategy, session_date(fill.ts))
            await self._notify(
                order.strategy,
                _update(order, "fill", fill.ts, qty=int(fill.qty), price=float(fill.price)),
            )
        if applied.status_changed and applied.fill is None:
            log.info(order_line(order.status, order, order.qty, order.stop_price), extra=extra)
        kind = _ENDED_UNFILLED.get(order.status)
        if applied.status_changed and kind and order.filled_qty < order.qty:
            await self._notify(order.strategy, _update(order, kind, event.ts_event))
        return applied

    async def not_sent(self, intent: Intent, now: datetime) -> None:
        """Tell the strategy its buy/sell intent was never sent (gate, size 0, nothing held),
        so it does not wait for an order that does not exist."""
        if self._metrics is not None:
            self._metrics.blocked.labels(intent.strategy).inc()
        if intent.action not in ("buy", "sell"):
            return
        await self._notify(
            intent.strategy,
            OrderUpdate(
                strategy=intent.strategy,
                symbol=intent.symbol,
                leg=intent.leg,
                signal_time=intent.signal_time,
                side=intent.action,
                kind="rejected",
                time=now,
                order_qty=0,
            ),
        )


def _update(
    order: OrderRow, kind: str, time: datetime, qty: int = 0, price: float | None = None
) -> OrderUpdate:
    """What the owning strategy is told about its order after an event."""
    return OrderUpdate(
        strategy=order.strategy,
        symbol=order.symbol,
        leg=order.leg,
        signal_time=order.signal_time,
        side=order.side,  # type: ignore[arg-type]
        kind=kind,  # type: ignore[arg-type]
        time=time,
        qty=qty,
        price=price,
        filled_qty=int(order.filled_qty),
        order_qty=int(order.qty),
    )
