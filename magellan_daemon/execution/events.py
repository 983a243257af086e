"""The one door for broker news: stream events, submit replies and reconciliation alike.

``EventSink.apply`` writes the event to the ledger (exactly once), logs every order state
change in one fixed shape, marks the day's CSV trade log for rewriting, wakes whoever waits
on the order (``OrderWatch``) and posts to the owning strategy what happened to its order
(fill increments; orders that ended unfilled). It is synchronous and never waits on anything:
the stream consumer that calls it never waits on REST, on a lane, or on a strategy.

What the state machine judges old news (the POST reply after the stream's fill) is logged at
DEBUG; a real contradiction at ERROR; a position that goes short (long-only strategies) is a
DISCREPANCY at ERROR, stored as it is and never booked as zero.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from magellan_daemon.domain import BrokerEvent, Discrepancy
from magellan_daemon.execution.order_watch import OrderWatch
from magellan_daemon.ledger.store import Applied, Ledger, OrderRow
from magellan_daemon.ledger.tradelog import TradeLogWriter
from magellan_daemon.observability.metrics import Metrics
from magellan_daemon.timefmt import session_date
from strategies.api.model import PROTECTIVE_STOP_LEG, Intent, OrderUpdate

log = logging.getLogger(__name__)
ZERO = Decimal(0)
# Statuses an order can end in without filling completely, and what the strategy is told.
_ENDED_UNFILLED = {
    "canceled": "canceled",
    "expired": "expired",
    "rejected": "rejected",
    "not_found": "rejected",  # the broker never received it
}

Notify = Callable[[str, OrderUpdate], None]
_REFUSED_REQUESTS = frozenset({"order_replace_rejected", "order_cancel_rejected"})


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
    """Applies broker events and posts the strategies' order news."""

    def __init__(
        self,
        ledger: Ledger,
        trade_log: TradeLogWriter,
        notify: Notify,
        watch: OrderWatch,
        clock_now: Callable[[], datetime],
        metrics: Metrics | None = None,
    ) -> None:
        self._ledger = ledger
        self._trade_log = trade_log
        self._notify = notify
        self._watch = watch
        self._now = clock_now
        self._metrics = metrics
        self.applied = 0
        self.unknown = 0
        # told of every event the ledger applied, after it (the router's in-memory accounts)
        self.listeners: list[Callable[[Applied], None]] = []

    def _fills_rewritten(self, applied: Applied, event: BrokerEvent, extra: dict[str, Any]) -> None:
        """A bust or correction (WARNING: the broker changed a past execution), or a fill
        first priced from the order's totals taking its execution's own price (INFO: a poll
        or lookup ran ahead of the stream, a normal race). The CSV of the days is rewritten."""
        order = applied.order
        assert order is not None
        if applied.restated:
            line = order_line(event.event, order, order.filled_qty, order.filled_avg_price)
            log.warning(line, extra=extra)
        else:
            log.info(order_line("repriced", order, event.qty or ZERO, event.price), extra=extra)
        for day in {session_date(event.ts_event), session_date(order.created_at)}:
            self._trade_log.mark(order.strategy, day)

    def apply(self, event: BrokerEvent) -> Applied:
        """Apply one event; returns what the ledger did with it."""
        applied = self._ledger.apply_event(event)
        order = applied.order
        if order is None or applied.dropped or applied.duplicate:
            self._not_applied(event, applied)
            return applied
        self.applied += 1
        extra = {"fields": log_fields(order, event.event)}
        if applied.verdict == "invalid":
            log.error(
                "invalid transition: %s (%s, from %s)",
                applied.reason,
                order.client_order_id,
                event.source,
                extra=extra,
            )
        elif applied.verdict == "stale":
            log.debug("%s (%s, from %s)", applied.reason, order.client_order_id, event.source)
        self._count(applied)
        if applied.fill is not None:
            fill = applied.fill
            log.info(order_line("filled", order, fill.qty, fill.price), extra=extra)
            self._trade_log.mark(order.strategy, session_date(fill.ts))
            if fill.position_after < 0:
                self._short(order, fill.position_after)
            self._notify(
                order.strategy,
                _update(order, "fill", fill.ts, qty=int(fill.qty), price=float(fill.price)),
            )
        if applied.restated or applied.repriced:
            self._fills_rewritten(applied, event, extra)
        kind = _ENDED_UNFILLED.get(order.status)
        if applied.status_changed and applied.fill is None:
            self._log_status(order, kind, event, extra)
        if kind and self._resent(order):
            kind = None  # never received, and queued to be sent again: nothing ended
        if applied.status_changed and kind and order.filled_qty < order.qty:
            self._notify(order.strategy, _update(order, kind, event.ts_event, reason=event.reason))
        self._watch.notify(order.client_order_id, event.event)
        for listener in self.listeners:
            listener(applied)
        return applied

    @staticmethod
    def _log_status(
        order: OrderRow, kind: str | None, event: BrokerEvent, extra: dict[str, Any]
    ) -> None:
        """The order's new state; a sell (an exit or a protective stop) that ended without
        filling is a WARNING with the broker's reason: a position is less protected or held
        longer than meant. Our own cancels are routine."""
        line = order_line(order.status, order, order.qty, order.stop_price)
        if event.event in _REFUSED_REQUESTS:
            # Our replace or cancel was refused: the order works on unchanged (a protective
            # stop not resized, or still holding the shares an exit waits for).
            log.warning("%s: %s (%s)", line, event.event, event.source, extra=extra)
        elif order.side == "sell" and kind is not None and kind != "canceled":
            why = event.reason or f"{event.event} ({event.source})"
            log.warning("%s: %s", line, why, extra=extra)
        elif event.reason:
            log.info("%s: %s", line, event.reason, extra=extra)
        else:
            log.info(line, extra=extra)

    def _not_applied(self, event: BrokerEvent, applied: Applied) -> None:
        if applied.order is None:
            self.unknown += 1
            log.warning(
                "event %s for order %s (%s) that is not ours: ignored",
                event.event,
                event.client_order_id,
                event.symbol,
            )
        elif applied.dropped:
            log.warning(
                "event %s for %s dropped: %s", event.event, event.client_order_id, applied.dropped
            )

    def _resent(self, order: OrderRow) -> bool:
        if order.status != "not_found" or order.intent_id is None:
            return False
        intent = self._ledger.intent(order.intent_id)
        return intent is not None and intent.status == "pending"

    def _count(self, applied: Applied) -> None:
        order = applied.order
        if self._metrics is None or order is None:
            return
        if applied.status_changed:
            self._metrics.orders.labels(order.strategy, order.status).inc()
            if order.status == "rejected":
                self._metrics.rejects.labels(order.strategy).inc()
        if applied.fill is not None:
            self._metrics.fills.labels(order.strategy).inc()

    def _short(self, order: OrderRow, qty: Decimal) -> None:
        discrepancy = Discrepancy(
            kind="short_position",
            account=order.account,
            symbol=order.symbol,
            detail=f"{order.strategy} is short {-qty} shares after {order.client_order_id} "
            f"filled (long-only): booked as it is; an operator must look",
        )
        self.discrepancy(discrepancy, level=logging.ERROR)

    def discrepancy(self, discrepancy: Discrepancy, level: int = logging.WARNING) -> None:
        """Record and log one discrepancy (the ledger keeps it for ``magellan status``)."""
        if self._metrics is not None:
            self._metrics.discrepancies.inc()
        self._ledger.record_discrepancy(discrepancy, self._now())
        log.log(
            level,
            "DISCREPANCY %s %s %s: %s",
            discrepancy.kind,
            discrepancy.account,
            discrepancy.symbol,
            discrepancy.detail,
            extra={"fields": {"SYMBOL": discrepancy.symbol, "EVENT": "discrepancy"}},
        )

    def not_sent(self, intent: Intent, reason: str) -> None:
        """Tell the strategy its buy/sell intent was not sent (gate, size 0, nothing held,
        shares still held by a stop), so it does not wait for an order that does not exist."""
        if self._metrics is not None:
            self._metrics.not_sent.labels(intent.strategy).inc()
        if intent.action not in ("buy", "sell"):
            return
        self._notify(
            intent.strategy,
            OrderUpdate(
                strategy=intent.strategy,
                symbol=intent.symbol,
                leg=intent.leg,
                signal_time=intent.signal_time,
                side=intent.action,
                kind="rejected",
                time=self._now(),
                order_qty=0,
                reason=reason,
            ),
        )

    def stop_report(
        self,
        strategy: str,
        symbol: str,
        signal_time: datetime,
        qty: Decimal,
        price: Decimal | None,
    ) -> None:
        """Tell the strategy what protective stop rests now (after one of its stop intents)."""
        self._notify(
            strategy,
            OrderUpdate(
                strategy=strategy,
                symbol=symbol,
                leg=PROTECTIVE_STOP_LEG,
                signal_time=signal_time,
                side="sell",
                kind="stop",
                time=self._now(),
                qty=int(qty),
                price=None if price is None or qty <= 0 else float(price),
            ),
        )


def _update(
    order: OrderRow,
    kind: str,
    time: datetime,
    qty: int = 0,
    price: float | None = None,
    reason: str = "",
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
        reason=reason,
    )
