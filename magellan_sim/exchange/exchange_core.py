"""The exchange core: its state, and time — everything that becomes due as the clock moves
(session opens, bar completions of symbols with working orders, session closes, cancels and
replaces in flight) is processed in time order, orders are matched and filled, and each change
is emitted as a trade update.

Plain synchronous code driven by a ``Clock``: every public method of the exchange first calls
``advance()``. The request-facing parts build on this class: ``order_desk`` (orders),
``account_desk`` (accounts, positions, activities) and ``market_desk`` (clock, calendar,
assets, bars)."""

from __future__ import annotations

import hashlib
import logging
import random
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_DOWN, Decimal
from typing import Any

from magellan_core.clock import Clock
from magellan_core.corporate_actions import CorporateAction
from magellan_sim.exchange.account import Account
from magellan_sim.exchange.faults import Faults
from magellan_sim.exchange.orders import ZERO, Order, match_price, opening_price, price_decimal
from magellan_sim.exchange.pending import CANCEL, REPLACE, Pending, PendingBook
from magellan_sim.exchange.wire import asset_id, dec, order_dict, ts
from magellan_sim.market.calendar import SessionCalendar, new_york_date
from magellan_sim.market.corporate import CorporateBook
from magellan_sim.market.market import MarketData, SimBar
from magellan_sim.market.tape import Tape

log = logging.getLogger(__name__)

Listener = Callable[[str, dict[str, Any]], None]
ACCOUNT_NAMESPACE = uuid.UUID("0b7e3c52-2f5d-4a8e-bb0c-7a4f1d6e9c30")
NOTIONAL_QTY_STEP = Decimal("0.000000001")
# A price re-scaled by a split (e.g. divided by 3) is kept to this many places.
SCALED_PRICE_STEP = Decimal("0.000001")


class ExchangeCore:
    """State, time, matching and trade updates of the paper broker."""

    """A paper broker: one account per API key, orders matched against the market's bars."""

    def __init__(
        self,
        clock: Clock,
        market: MarketData,
        calendar: SessionCalendar,
        *,
        cash: Decimal = Decimal(100000),
        slippage_bps: float = 0.0,
        faults: Faults | None = None,
        seed: int = 0,
        wash_trade_check: bool = True,
        cancel_latency: float = 2.0,
        replace_latency: float = 2.0,
        corporate_actions: Iterable[CorporateAction] = (),
    ) -> None:
        self.clock = clock
        self.market = market
        self.calendar = calendar
        self.faults = faults or Faults()
        self.faults.use_clock(clock.now)
        self.slippage_bps = slippage_bps
        self.wash_trade_check = wash_trade_check
        if cancel_latency < 0 or replace_latency < 0:
            raise ValueError("cancel and replace latencies must be >= 0 seconds")
        self._cancel_delay = timedelta(seconds=cancel_latency)
        self._replace_delay = timedelta(seconds=replace_latency)
        self._pending = PendingBook()
        self._partial_once: set[str] = set()  # orders whose next fill is a part (a fault)
        self._schedule_listeners: list[Callable[[], None]] = []
        self._initial_cash = Decimal(cash)
        self._rng = random.Random(seed)
        self._accounts: dict[str, Account] = {}
        self._working: dict[str, Order] = {}
        self._listeners: list[Listener] = []
        self._processed = clock.now()
        self._symbol_by_asset_id = {asset_id(s): s for s in market.symbols()}
        self.tape = Tape(market, calendar)
        self.corporate = CorporateBook(corporate_actions)

    def add_listener(self, callback: Listener) -> None:
        """Call ``callback(account_key, message)`` for every trade_updates message."""
        self._listeners.append(callback)

    def add_schedule_listener(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` whenever a cancel or replace is put in flight (``next_due``
        may then be earlier than it was): the server's publisher re-plans its wake-up."""
        self._schedule_listeners.append(callback)

    def next_due(self) -> datetime | None:
        """When the earliest cancel or replace in flight completes (None if none is): an
        instant ``advance()`` must reach even when no request arrives."""
        return self._pending.next_due()

    # -- time --------------------------------------------------------------------------------

    def advance(self) -> None:
        """Process everything due up to ``clock.now()`` in time order (idempotent)."""
        now = self.clock.now()
        while (due := self._next_event(now)) is not None:
            self._process(due)
            self._processed = due
        self._processed = max(self._processed, now)

    def _next_event(self, now: datetime) -> datetime | None:
        after = self._processed
        candidates: list[datetime] = []
        for upcoming in (self.calendar.next_open, self.calendar.next_close):
            try:
                candidates.append(upcoming(after))
            except ValueError:
                continue  # beyond the calendar's range
        for symbol in {o.symbol for o in self._working.values()}:
            done = self.tape.next_completion(symbol, after)
            if done is not None:
                candidates.append(done)
        pending = self._pending.next_due()
        if pending is not None:
            candidates.append(max(pending, after))
        corporate = self.corporate.next_due(after)
        if corporate is not None:
            candidates.append(corporate)
        due = min(candidates, default=None)
        return due if due is not None and due <= now else None

    def _process(self, t: datetime) -> None:
        for action in self.corporate.due_at(t):
            self._apply_corporate_action(action, t)
        session = self.calendar.session_at(t)
        if session is not None and session.open == t:
            self._open_session(t)
        for symbol in sorted({o.symbol for o in self._working.values()}):
            self._match_symbol(symbol, t)
        # After the bars completing at t (a fill at the same instant wins the race), before
        # the close (a cancel due at the close cancels rather than expires).
        for action in self._pending.take_due(t):
            self._complete(action, t)
        if self.calendar.previous_close(t) == t:
            self._close_session(t)

    def _apply_corporate_action(self, action: CorporateAction, t: datetime) -> None:
        """Apply a split or dividend to every account (``corporate_desk`` does it)."""
        raise NotImplementedError

    def _open_session(self, t: datetime) -> None:
        for order in list(self._working.values()):
            if order.active_from is None:
                order.active_from = t
                action = self._pending.get(order.id)
                if action is not None:
                    # its cancel is still in flight: it works from now on, stays
                    # pending_cancel, and a refused cancel leaves it new
                    action.previous_status = "new"
                    continue
                order.status = "new"
                order.updated_at = t
                self._emit(order, "new", t)

    def _close_session(self, t: datetime) -> None:
        for order in list(self._working.values()):
            if order.expires_at is not None and order.expires_at <= t:
                self._expire(order, t)
        for account in self._accounts.values():
            account.last_equity = account.cash + self._long_market_value(account, t)

    def _match_symbol(self, symbol: str, t: datetime) -> None:
        bar = self.tape.bar_completing_at(symbol, t)
        if bar is None or not self.calendar.is_open(bar.t):
            return  # orders only fill against regular-session minutes
        for order in [o for o in self._working.values() if o.symbol == symbol]:
            if order.active_from is not None and bar.t >= order.active_from:
                self._match(order, bar, t)

    def _match(self, order: Order, bar: SimBar, t: datetime) -> None:
        if order.time_in_force == "opg":
            price = opening_price(order, bar)
        else:
            price = match_price(order, bar, self.slippage_bps)
        if price is not None:
            self._fill(order, price, t)
        if order.time_in_force in ("opg", "ioc") and order.is_open:
            self._cancel(order, t)

    def _fill(self, order: Order, raw_price: float, t: datetime) -> None:
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
        action = self._pending.get(order.id)
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
            self._working.pop(order.id, None)
        execution_id = self._uuid()
        account.record_fill(order, qty, price, t, execution_id)
        self._emit(
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
            self._refuse_replace(self._pending.pop(order.id) or action, order, t)

    def _fill_qty(self, remaining: Decimal, part_only: bool = False) -> Decimal:
        if part_only and remaining > 1:
            return (remaining / 2).to_integral_value(rounding=ROUND_DOWN)
        ratio = self.faults.partial_fill_ratio
        if ratio <= 0:
            return remaining
        part = (remaining * Decimal(repr(ratio))).to_integral_value(rounding=ROUND_CEILING)
        return min(remaining, max(Decimal(1), part))

    def _cancel(self, order: Order, t: datetime) -> None:
        order.status = "canceled"
        order.canceled_at = order.updated_at = t
        self._working.pop(order.id, None)
        self._emit(order, "canceled", t)
        self._ended(order, t)

    def _expire(self, order: Order, t: datetime) -> None:
        order.status = "expired"
        order.expired_at = order.updated_at = t
        self._working.pop(order.id, None)
        self._emit(order, "expired", t)
        self._ended(order, t)

    def _reject(self, order: Order, t: datetime) -> None:
        order.status = "rejected"
        order.failed_at = order.updated_at = t
        self._working.pop(order.id, None)
        self._emit(order, "rejected", t)

    # -- cancels and replaces in flight ------------------------------------------------------

    def _schedule(self, action: Pending) -> None:
        self._pending.add(action)
        for callback in list(self._schedule_listeners):
            callback()

    def _complete(self, action: Pending, t: datetime) -> None:
        """The venue's answer to a cancel or replace whose latency has elapsed."""
        account = self._accounts[action.account_key]
        order = account.orders[action.order_id]
        if action.kind == CANCEL:
            if action.refused:
                order.status = action.previous_status
                order.updated_at = t
                self._emit(order, "order_cancel_rejected", t)
            else:
                self._cancel(order, t)
            return
        if action.refused:
            self._refuse_replace(action, order, t)
            return
        new = account.orders[action.new_order_id or ""]
        order.status = "replaced"
        order.replaced_at = order.updated_at = t
        order.replaced_by = new.id
        self._working.pop(order.id, None)
        self._emit(order, "replaced", t)
        self._go_live(new, t)

    def _refuse_replace(self, action: Pending, old: Order, t: datetime) -> None:
        """The replace failed: the old order stays as it is (or returns to its status before
        the replace), and the new one is rejected."""
        if old.status == "pending_replace":
            old.status = action.previous_status
            old.updated_at = t
        self._emit(old, "order_replace_rejected", t)
        self._reject(self._accounts[action.account_key].orders[action.new_order_id or ""], t)

    def _ended(self, order: Order, t: datetime) -> None:
        """``order`` reached a terminal status: settle a cancel or replace still in flight."""
        action = self._pending.pop(order.id)
        if action is None:
            return
        if action.kind == REPLACE:
            self._refuse_replace(action, order, t)
        elif order.status == "filled":
            self._emit(order, "order_cancel_rejected", t)  # the fill won the race
        # canceled or expired meanwhile: what the cancel asked for happened anyway

    def _emit(self, order: Order, event: str, t: datetime, **fill: str | None) -> None:
        message = {
            "stream": "trade_updates",
            "data": {"event": event, "timestamp": ts(t), "order": order_dict(order), **fill},
        }
        for callback in list(self._listeners):
            try:
                callback(order.account_key, message)
            except Exception:
                log.exception("trade_updates listener failed on %s %s", event, order.id)

    # -- accounts ----------------------------------------------------------------------------

    def _account(self, key: str) -> Account:
        account = self._accounts.get(key)
        if account is None:
            digest = int(hashlib.sha256(key.encode()).hexdigest(), 16)
            account = Account(
                key=key,
                id=str(uuid.uuid5(ACCOUNT_NAMESPACE, key)),
                account_number=f"PA{digest % 10**10:010d}",
                created_at=self.clock.now(),
                cash=self._initial_cash,
                last_equity=self._initial_cash,
            )
            self._accounts[key] = account
        return account

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _price(
        self, symbol: str, now: datetime, scale_at: datetime | None = None
    ) -> Decimal | None:
        """The last trade price at ``now``, on the share scale of ``scale_at`` (default
        ``now``): a price from before a split that has since applied is divided by it."""
        bar = self.tape.latest_bar(symbol, now)
        if bar is None:
            return None
        price = Decimal(repr(bar.close))
        if self.corporate:
            as_of = new_york_date(scale_at or now)
            scale = self.corporate.price_scale(symbol, new_york_date(bar.t), as_of)
            if scale != 1:
                price = (price / scale).quantize(SCALED_PRICE_STEP)
        return price

    def _long_market_value(self, account: Account, now: datetime) -> Decimal:
        total = ZERO
        for position in account.positions.values():
            price = self._price(position.symbol, now) or position.avg_entry_price
            total += position.qty * price
        return total
