"""The exchange core: time. Everything that becomes due as the clock moves (session opens,
bar completions of symbols with working orders, session closes, cancels and replaces in
flight, corporate actions) is processed in time order, and the working orders are matched
against each completed minute.

Plain synchronous code driven by a ``Clock``: every request the desks answer first calls
``advance()``, so an answer always reflects everything due up to ``clock.now()``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from magellan_core.clock import Clock
from magellan_core.corporate_actions import CorporateAction
from magellan_sim.exchange.book import AccountBook
from magellan_sim.exchange.lifecycle import OrderLifecycle
from magellan_sim.exchange.orders import Order, match_price, opening_price
from magellan_sim.exchange.valuation import Valuation
from magellan_sim.market.calendar import SessionCalendar
from magellan_sim.market.corporate import CorporateBook
from magellan_sim.market.market import SimBar

ApplyAction = Callable[[CorporateAction, datetime], None]


class ExchangeCore:
    """Time and matching: processes what is due, in order, up to the clock's now."""

    def __init__(
        self,
        clock: Clock,
        calendar: SessionCalendar,
        *,
        lifecycle: OrderLifecycle,
        accounts: AccountBook,
        valuation: Valuation,
        corporate: CorporateBook,
        apply_action: ApplyAction,
        slippage_bps: float,
    ) -> None:
        self._clock = clock
        self._calendar = calendar
        self._lifecycle = lifecycle
        self._accounts = accounts
        self._valuation = valuation
        self._corporate = corporate
        self._apply_action = apply_action
        self._slippage_bps = slippage_bps
        self._processed = clock.now()

    def next_due(self) -> datetime | None:
        """When the earliest cancel or replace in flight completes (None if none is): an
        instant ``advance()`` must reach even when no request arrives."""
        return self._lifecycle.pending.next_due()

    def busy(self) -> bool:
        """Orders working or cancels and replaces in flight (see ``Exchange.busy``)."""
        return bool(self._lifecycle.working) or len(self._lifecycle.pending) > 0

    def advance(self) -> None:
        """Process everything due up to ``clock.now()`` in time order (idempotent)."""
        now = self._clock.now()
        while (due := self._next_event(now)) is not None:
            self._process(due)
            self._processed = due
        self._processed = max(self._processed, now)

    def _next_event(self, now: datetime) -> datetime | None:
        after = self._processed
        candidates: list[datetime] = []
        for upcoming in (self._calendar.next_open, self._calendar.next_close):
            try:
                candidates.append(upcoming(after))
            except ValueError:
                continue  # beyond the calendar's range
        tape = self._valuation.tape
        for symbol in {o.symbol for o in self._lifecycle.working.values()}:
            done = tape.next_completion(symbol, after)
            if done is not None:
                candidates.append(done)
        pending = self._lifecycle.pending.next_due()
        if pending is not None:
            candidates.append(max(pending, after))
        corporate = self._corporate.next_due(after)
        if corporate is not None:
            candidates.append(corporate)
        due = min(candidates, default=None)
        return due if due is not None and due <= now else None

    def _process(self, t: datetime) -> None:
        for action in self._corporate.due_at(t):
            self._apply_action(action, t)
        session = self._calendar.session_at(t)
        if session is not None and session.open == t:
            self._lifecycle.start_session(t)
        for symbol in sorted({o.symbol for o in self._lifecycle.working.values()}):
            self._match_symbol(symbol, t)
        # After the bars completing at t (a fill at the same instant wins the race), before
        # the close (a cancel due at the close cancels rather than expires).
        for action in self._lifecycle.pending.take_due(t):
            self._lifecycle.complete(action, t)
        if self._calendar.previous_close(t) == t:
            self._close_session(t)

    def _close_session(self, t: datetime) -> None:
        for order in list(self._lifecycle.working.values()):
            if order.expires_at is not None and order.expires_at <= t:
                self._lifecycle.expire(order, t)
        for account in self._accounts:
            account.last_equity = account.cash + self._valuation.long_market_value(account, t)

    def _match_symbol(self, symbol: str, t: datetime) -> None:
        bar = self._valuation.tape.bar_completing_at(symbol, t)
        if bar is None or not self._calendar.is_open(bar.t):
            return  # orders only fill against regular-session minutes
        for order in [o for o in self._lifecycle.working.values() if o.symbol == symbol]:
            if order.active_from is not None and bar.t >= order.active_from:
                self._match(order, bar, t)

    def _match(self, order: Order, bar: SimBar, t: datetime) -> None:
        if order.time_in_force == "opg":
            price = opening_price(order, bar)
        else:
            price = match_price(order, bar, self._slippage_bps)
        if price is not None:
            self._lifecycle.fill(order, price, t)
        if order.time_in_force in ("opg", "ioc") and order.is_open:
            self._lifecycle.cancel(order, t)
