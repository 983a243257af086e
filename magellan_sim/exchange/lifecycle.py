"""Orders' lifecycle: the working orders, the cancels and replaces in flight, and every
change of status with the trade update it emits (fills included).

The desks and the core change an order's status only through this object, so every change
is announced once, in the order it happened."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_DOWN, Decimal
from typing import Any

from magellan_sim.exchange.book import AccountBook, Ids
from magellan_sim.exchange.faults import Faults
from magellan_sim.exchange.orders import Order, price_decimal
from magellan_sim.exchange.pending import CANCEL, REPLACE, Pending, PendingBook
from magellan_sim.exchange.wire import dec, order_dict, ts
from magellan_sim.market.calendar import SessionCalendar

log = logging.getLogger(__name__)

Listener = Callable[[str, dict[str, Any]], None]
NOTIONAL_QTY_STEP = Decimal("0.000000001")


class TradeUpdates:
    """The ``trade_updates`` messages, to every listener (a failing listener is logged and
    never stops the others nor the exchange)."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def add_listener(self, callback: Listener) -> None:
        """Call ``callback(account_key, message)`` for every trade_updates message."""
        self._listeners.append(callback)

    def emit(self, order: Order, event: str, t: datetime, **fill: str | None) -> None:
        """Announce ``event`` of ``order`` at ``t`` (with the fill's fields, for a fill)."""
        message = {
            "stream": "trade_updates",
            "data": {"event": event, "timestamp": ts(t), "order": order_dict(order), **fill},
        }
        for callback in list(self._listeners):
            try:
                callback(order.account_key, message)
            except Exception:
                log.exception("trade_updates listener failed on %s %s", event, order.id)


class OrderLifecycle:
    """Working orders, cancels and replaces in flight, and the status changes of orders.

    ``working``: the orders the core matches against the bars (by id); ``pending``: the
    cancels and replaces in flight; ``updates``: where every change is announced.
    """

    def __init__(
        self, accounts: AccountBook, calendar: SessionCalendar, faults: Faults, ids: Ids
    ) -> None:
        self.updates = TradeUpdates()
        self.pending = PendingBook()
        self.working: dict[str, Order] = {}
        self._accounts = accounts
        self._calendar = calendar
        self._faults = faults
        self._ids = ids
        self._partial_once: set[str] = set()  # orders whose next fill is a part (a fault)
        self._schedule_listeners: list[Callable[[], None]] = []

    def add_schedule_listener(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` whenever a cancel or replace is put in flight (``next_due``
        may then be earlier than it was): the server's publisher re-plans its wake-up."""
        self._schedule_listeners.append(callback)

    def schedule(self, action: Pending) -> None:
        """Put a cancel or replace in flight."""
        self.pending.add(action)
        for callback in list(self._schedule_listeners):
            callback()

    def fill_part_next(self, order_id: str) -> None:
        """The next fill of this order is only a part of it (the ``partial_next_orders``
        fault)."""
        self._partial_once.add(order_id)

    # -- going live --------------------------------------------------------------------------

    def start_session(self, t: datetime) -> None:
        """The session opens at ``t``: the orders waiting for it work from now on."""
        for order in list(self.working.values()):
            if order.active_from is None:
                order.active_from = t
                action = self.pending.get(order.id)
                if action is not None:
                    # its cancel is still in flight: it works from now on, stays
                    # pending_cancel, and a refused cancel leaves it new
                    action.previous_status = "new"
                    continue
                order.status = "new"
                order.updated_at = t
                self.updates.emit(order, "new", t)

    def activate_if_open(self, order: Order, now: datetime) -> None:
        """An accepted order works at once during the session (``new``); OPG orders always
        wait for the open."""
        if order.time_in_force != "opg" and self._calendar.is_open(now):
            order.status = "new"
            order.active_from = now
            self.updates.emit(order, "new", now)

    def _go_live(self, order: Order, t: datetime) -> None:
        """A replacement whose replace completed: working from now, ``new`` while the
        market is open, else ``accepted`` until the next open."""
        order.status = "accepted"
        order.updated_at = t
        self.working[order.id] = order
        self.activate_if_open(order, t)

    # -- fills -------------------------------------------------------------------------------

    def fill(self, order: Order, raw_price: float, t: datetime) -> None:
        """Execute ``order`` (all of it, or the part a fault allows) at ``raw_price``."""
        price = price_decimal(raw_price)
        if order.notional is not None:
            qty = (order.notional / price).quantize(NOTIONAL_QTY_STEP, rounding=ROUND_DOWN)
        else:
            qty = self._fill_qty(order.remaining_qty, order.id in self._partial_once)
            self._partial_once.discard(order.id)
        account = self._accounts[order.account_key]
        position_qty = account.apply_fill(order, qty, price)
        order.filled_qty += qty
        order.filled_value += qty * price
        complete = order.notional is not None or order.remaining_qty == 0
        action = self.pending.get(order.id)
        if complete:
            order.status = "filled"
        elif action is not None and action.kind == CANCEL:
            # the cancel of the rest still completes; refused, the order returns to this
            action.previous_status = "partially_filled"
        else:
            order.status = "partially_filled"
        order.updated_at = t
        if complete:
            order.filled_at = t
            self.working.pop(order.id, None)
        execution_id = self._ids.new()
        account.record_fill(order, qty, price, t, execution_id)
        self.updates.emit(
            order,
            "fill" if complete else "partial_fill",
            t,
            execution_id=execution_id,
            price=dec(price),
            qty=dec(qty),
            position_qty=dec(position_qty),
        )
        if complete:
            self._ended(order, t)
        elif action is not None and action.kind == REPLACE:
            # Stricter reading: a partial fill during a replace refuses it like a full fill
            # (the new order's qty was asked for against a remainder that no longer holds).
            self._refuse_replace(self.pending.pop(order.id) or action, order, t)

    def _fill_qty(self, remaining: Decimal, part_only: bool = False) -> Decimal:
        if part_only and remaining > 1:
            return (remaining / 2).to_integral_value(rounding=ROUND_DOWN)
        ratio = self._faults.partial_fill_ratio
        if ratio <= 0:
            return remaining
        part = (remaining * Decimal(repr(ratio))).to_integral_value(rounding=ROUND_CEILING)
        return min(remaining, max(Decimal(1), part))

    # -- ends --------------------------------------------------------------------------------

    def cancel(self, order: Order, t: datetime) -> None:
        """``order`` is canceled at ``t``."""
        order.status = "canceled"
        order.canceled_at = order.updated_at = t
        self.working.pop(order.id, None)
        self.updates.emit(order, "canceled", t)
        self._ended(order, t)

    def expire(self, order: Order, t: datetime) -> None:
        """``order`` expires at ``t`` (its time in force ran out)."""
        order.status = "expired"
        order.expired_at = order.updated_at = t
        self.working.pop(order.id, None)
        self.updates.emit(order, "expired", t)
        self._ended(order, t)

    def reject(self, order: Order, t: datetime) -> None:
        """``order`` is rejected at ``t``."""
        order.status = "rejected"
        order.failed_at = order.updated_at = t
        self.working.pop(order.id, None)
        self.updates.emit(order, "rejected", t)

    # -- cancels and replaces in flight ------------------------------------------------------

    def complete(self, action: Pending, t: datetime) -> None:
        """The venue's answer to a cancel or replace whose latency has elapsed."""
        account = self._accounts[action.account_key]
        order = account.orders[action.order_id]
        if action.kind == CANCEL:
            if action.refused:
                order.status = action.previous_status
                order.updated_at = t
                self.updates.emit(order, "order_cancel_rejected", t)
            else:
                self.cancel(order, t)
            return
        if action.refused:
            self._refuse_replace(action, order, t)
            return
        new = account.orders[action.new_order_id or ""]
        order.status = "replaced"
        order.replaced_at = order.updated_at = t
        order.replaced_by = new.id
        self.working.pop(order.id, None)
        self.updates.emit(order, "replaced", t)
        self._go_live(new, t)

    def _refuse_replace(self, action: Pending, old: Order, t: datetime) -> None:
        """The replace failed: the old order stays as it is (or returns to its status before
        the replace), and the new one is rejected."""
        if old.status == "pending_replace":
            old.status = action.previous_status
            old.updated_at = t
        self.updates.emit(old, "order_replace_rejected", t)
        self.reject(self._accounts[action.account_key].orders[action.new_order_id or ""], t)

    def _ended(self, order: Order, t: datetime) -> None:
        """``order`` reached a terminal status: settle a cancel or replace still in flight."""
        action = self.pending.pop(order.id)
        if action is None:
            return
        if action.kind == REPLACE:
            self._refuse_replace(action, order, t)
        elif order.status == "filled":
            self.updates.emit(order, "order_cancel_rejected", t)  # the fill won the race
        # canceled or expired meanwhile: what the cancel asked for happened anyway
