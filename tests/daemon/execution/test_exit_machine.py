"""A model-based test of the exit machinery (issue 17): hypothesis chooses the bars and the
broker's answer to every order, cancel and replace, and after every step the daemon must
hold its promises to the account.

One Bear Trap trade on one symbol: 20 flat minutes at 10, a crash to 8 and the trap bar
(the reference scenario of ``tests/strategies/test_bear_trap.py``), so the entry is sent at
09:52 and fills with the first bar the model chooses. From there the rules choose the next
bar (its low and high in the zones the plan's levels cut: below the stop, stop..TP1,
TP1..TP2, above TP2), quiet minutes, minutes with no trade at all, and the broker's answer
to the NEXT order, cancel or replace request (``sim.faults``: the same answers the HTTP
simulator gives). Every example ends with the day run to its close.

The daemon's parts are the real ones (``exit_model``); only time is virtual.

Invariants, after every step (and at the instant of every broker update where they are
about the broker's book):

- never short: the broker's position and the ledger's are never below 0;
- never two working sells beyond the stop: at most one working non-stop sell, and the
  working sells (stop included) never hold more shares than the position;
- every open position is under a working stop or a working exit, or uncovered for no longer
  than ``UNPROTECTED_ALLOWANCE`` (below: one bar plus the waits the router documents);
- flat by the close: after 16:00 ET no shares are held (broker and ledger);
- every intent is reported exactly once: each stop intent gets one stop report; each buy or
  sell intent ends in one of filled, partly filled and ended, refused with the broker's
  reason, or not sent with why, once its lane is done and its order has ended.

``MAGELLAN_MODEL_EXAMPLES`` sets the number of examples (200 by default, what ``make test``
runs; ``make chaos`` runs 2,000); the seed is fixed (``derandomize``).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections import Counter
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from magellan_daemon.execution.router import ENTRY_SETTLE_SECONDS
from magellan_sim.exchange.faults import COUNTERS
from strategies.api.model import Intent
from tests.daemon.execution.exit_model import MINUTE, STRATEGY, SYMBOL, ExitStack, remaining

EXAMPLES = int(os.environ.get("MAGELLAN_MODEL_EXAMPLES", "200"))
DAY = date(2024, 4, 2)  # a full session (09:30-16:00 ET)
STOP_ACTIONS = frozenset({"place_stop", "replace_stop", "cancel_stop"})

# The broker's answer to the next request of each kind: the faults that give it.
ORDER_ANSWERS: dict[str, dict[str, int]] = {
    "accepted": {},
    "refused 403 buying power": {"refuse_next_orders": 1},
    "refused 403 wash trade": {"wash_trade_next_orders": 1},
    "refused 403 insufficient qty": {"insufficient_qty_next_orders": 1},
    "accepted then rejected": {"reject_next_orders": 1},
    "partly filled": {"partial_next_orders": 1},
    "accepted then canceled": {"cancel_next_orders": 1},
    "accepted then expired": {"expire_next_orders": 1},
    "5xx, not created": {"error_next_orders": 1},
    "5xx, created": {"error_after_next_orders": 1},
}
CANCEL_ANSWERS = {
    "accepted": {},
    "refused (order_cancel_rejected)": {"refuse_next_cancels": 1},
    "pending_cancel for a while": {"hold_next_cancels": 1},
    "5xx, nothing done": {"error_next_cancels": 1},
    "5xx, the cancel in flight": {"error_after_next_cancels": 1},
}
REPLACE_ANSWERS = {
    "accepted": {},
    "refused (order_replace_rejected)": {"refuse_next_replaces": 1},
    "pending_replace for a while": {"hold_next_replaces": 1},
    "5xx, nothing done": {"error_next_replaces": 1},
    "5xx, the replace in flight": {"error_after_next_replaces": 1},
}
HOLDS = (5.0, 30.0, 90.0)  # seconds a held cancel or replace stays pending

# How long a position may be without a working stop or exit for all its shares and without
# the daemon trying again (a stop or a sell sent: "a retry due within one bar"; consecutive
# refusals each get their own allowance, and the close judges the outcome).
# - one bar (60 s): the strategy re-places a missing stop or re-decides an exit at the next
#   bar or minute-clock tick, which the daemon posts 5 s after each minute: at most 65 s
#   after the moment it was uncovered;
# - 10 s: the order path's backoffs before it looks up and re-sends an order whose answer
#   was lost (0.25-0.5 s, doubling: at most 7.5 s over its 5 attempts);
# - ENTRY_SETTLE_SECONDS (120 s), only while the position's entry order still works: the
#   router documents that it waits this long for the entry to finish before it places the
#   stop (Alpaca refuses the stop as a wash trade meanwhile), then cancels the rest;
# - the hold of a cancel or replace the model made the broker keep pending, only when one
#   was in flight during that time (the broker's own delay, counted once).
ONE_BAR = 65.0
BACKOFF_SLACK = 10.0


def _levels(stack: ExitStack) -> tuple[float, float, float]:
    """(stop, TP1, TP2) of the plan, or of the reference trade when there is none."""
    plan = stack.strategy.plan(SYMBOL)
    if plan is None or plan.entry_price is None:
        return 7.68, 9.13, 10.05
    return plan.stop, plan.tp1_level, plan.tp2_level


def _zone_price(levels: tuple[float, float, float], zone: int, frac: float) -> float:
    stop, tp1, tp2 = levels
    lo, hi = {
        0: (stop - 0.15, stop - 0.01),
        1: (stop + 0.02, tp1 - 0.02),
        2: (tp1 + 0.01, tp2 - 0.01),
        3: (tp2 + 0.01, tp2 + 0.20),
    }[zone]
    return round(lo + (hi - lo) * frac, 2)


class Watchdog:
    """Judges the broker's book at every update the broker sends (and after every step)."""

    def __init__(self, stack: ExitStack) -> None:
        self.stack = stack
        self.violations: list[str] = []
        self.uncovered_since: datetime | None = None
        self.allowance = 0.0
        self._entry_counted = False
        self._hold_counted = False
        stack.mirror.on_change.append(self.check)

    def _violate(self, what: str) -> None:
        line = f"{self.stack.clock.now():%H:%M:%S}Z {what}"
        if line not in self.violations:
            self.violations.append(line)

    def check(self) -> None:
        mirror, now = self.stack.mirror, self.stack.clock.now()
        position = mirror.position
        if position < 0:
            self._violate(f"SHORT at the broker: position {position}")
        sells = mirror.working_sells()
        exits = [o for o in sells if o["type"] != "stop"]
        if len(exits) > 1:
            cids = ", ".join(o["client_order_id"] for o in exits)
            self._violate(f"TWO WORKING EXIT SELLS: {cids}")
        held = sum((remaining(o) for o in sells), Decimal(0))
        if held > max(position, Decimal(0)):
            cids = ", ".join(f"{o['client_order_id']}({remaining(o)})" for o in sells)
            self._violate(f"SELLS BEYOND THE POSITION: {held} working for {position} held: {cids}")
        if position > 0 and held < position:
            if self.uncovered_since is None:
                self.uncovered_since = now
                self.allowance = ONE_BAR + BACKOFF_SLACK
                self._entry_counted = self._hold_counted = False
            self._widen_allowance()
            self._judge_spell(now)
        elif self.uncovered_since is not None:
            self._judge_spell(now)
            self.uncovered_since = None

    def _widen_allowance(self) -> None:
        orders = self.stack.mirror.orders.values()
        live = [o for o in orders if o["status"] not in ("filled", "canceled", "expired")]
        if not self._entry_counted and any(
            o["side"] == "buy"
            and o["status"] in ("new", "accepted", "partially_filled", "pending_cancel")
            for o in live
        ):
            self._entry_counted = True
            self.allowance += ENTRY_SETTLE_SECONDS
        if not self._hold_counted and any(
            o["status"] in ("pending_cancel", "pending_replace") for o in live
        ):
            self._hold_counted = True
            self.allowance += self.stack.exchange.faults.hold_seconds

    def _judge_spell(self, now: datetime) -> None:
        """Uncovered, the daemon must try again (a stop or a sell sent, whatever the broker
        answers) within the allowance of the moment it was uncovered or of its last try:
        a retry due within one bar."""
        assert self.uncovered_since is not None
        tries = [
            o.created_at
            for o in self.stack.ledger.orders(strategy=STRATEGY, symbol=SYMBOL)
            if o.side == "sell"
        ]
        since = max([self.uncovered_since, *tries])
        lasted = (now - since).total_seconds()
        if lasted > self.allowance:
            self._violate(
                f"UNPROTECTED since {self.uncovered_since:%H:%M:%S}Z, no stop or sell sent "
                f"since {since:%H:%M:%S}Z ({lasted:.0f} s > {self.allowance:.0f} s allowed): "
                f"position {self.stack.mirror.position}, working sells "
                f"{[o['client_order_id'] for o in self.stack.mirror.working_sells()]}"
            )


class ExitMachine(RuleBasedStateMachine):
    """See the module docstring."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: ExitStack | None = None
        self.watchdog: Watchdog | None = None
        self.closed = False

    # -- the trade ---------------------------------------------------------------------

    @initialize(entry=st.sampled_from(sorted(ORDER_ANSWERS, key=lambda a: a != "accepted")))
    def crash_and_trap(self, entry: str) -> None:
        """The reference crash and trap bar: the entry is sent at 09:52 with ``entry`` as
        the broker's answer to it."""
        self.stack = stack = ExitStack(DAY)
        self.watchdog = Watchdog(stack)

        async def setup() -> None:
            for _ in range(20):
                await stack.minute(stack.bar(10.0, 10.05, 9.95, 10.0))
            await stack.minute(stack.bar(10.0, 10.0, 8.0, 8.05))
            self._answer(ORDER_ANSWERS, ORDER_ANSWERS[entry])
            await stack.minute(stack.bar(7.95, 8.25, 7.80, 8.20, 5000.0))

        stack.run(setup())

    def _answer(self, table: dict[str, dict[str, int]], faults: dict[str, int]) -> None:
        assert self.stack is not None
        names = {name for answer in table.values() for name in answer}
        self.stack.exchange.faults.update(**({name: 0 for name in names} | faults))

    @property
    def open_day(self) -> bool:
        return (
            self.stack is not None
            and not self.closed
            and self.stack.next_minute <= self.stack.session.close
        )

    @precondition(lambda self: self.open_day)
    @rule(
        low_zone=st.integers(0, 3),
        high_zone=st.integers(0, 3),
        fracs=st.tuples(*[st.sampled_from((0.0, 0.5, 1.0))] * 4),
    )
    def bar(self, low_zone: int, high_zone: int, fracs: tuple[float, ...]) -> None:
        """The next minute's bar: its low and high in the zones the plan's stop, TP1 and TP2
        cut (0 below the stop, 1 stop..TP1, 2 TP1..TP2, 3 above TP2)."""
        stack = self.stack
        assert stack is not None
        levels = _levels(stack)
        a = _zone_price(levels, min(low_zone, high_zone), fracs[0])
        b = _zone_price(levels, max(low_zone, high_zone), fracs[1])
        low, high = min(a, b), max(a, b)
        o = round(low + (high - low) * fracs[2], 2)
        c = round(low + (high - low) * fracs[3], 2)
        stack.run(stack.minute(stack.bar(o, high, low, c)))

    @precondition(lambda self: self.open_day)
    @rule(minutes=st.integers(1, 12))
    def quiet(self, minutes: int) -> None:
        """Minutes of quiet bars between the stop and TP1."""
        stack = self.stack
        assert stack is not None
        stack.run(self._quiet(minutes))

    async def _quiet(self, minutes: int) -> None:
        stack = self.stack
        assert stack is not None
        for _ in range(minutes):
            if stack.next_minute > stack.session.close:
                return
            stop, tp1, _ = _levels(stack)
            mid = round((stop + tp1) / 2, 2)
            await stack.minute(stack.bar(mid, mid + 0.02, mid - 0.02, mid))

    @precondition(
        lambda self: (
            self.open_day
            and self.stack.next_minute + timedelta(minutes=3)
            < self.stack.session.close - timedelta(minutes=15)
        )
    )
    @rule(minutes=st.integers(1, 3))
    def no_trades(self, minutes: int) -> None:
        """Minutes in which the stock does not trade at all (no bar: only the minute clock)."""
        stack = self.stack
        assert stack is not None

        async def gap() -> None:
            for _ in range(minutes):
                await stack.minute(None)

        stack.run(gap())

    @precondition(lambda self: self.open_day and self._time_stop_ahead() is not None)
    @rule()
    def to_the_time_stop(self) -> None:
        """Quiet minutes up to the last one before the time stop is due."""
        due = self._time_stop_ahead()
        assert self.stack is not None and due is not None
        self.stack.run(self._quiet_until(due))

    def _time_stop_ahead(self) -> datetime | None:
        stack = self.stack
        plan = None if stack is None else stack.strategy.plan(SYMBOL)
        if stack is None or plan is None or plan.entry_time is None:
            return None
        due = plan.entry_time + timedelta(minutes=stack.params.time_stop_minutes)
        return due if stack.next_minute < due else None

    @precondition(lambda self: self.open_day and self.stack.next_minute < self._eod())
    @rule()
    def to_the_end_of_day(self) -> None:
        """Quiet minutes up to the last one before the end-of-day exit is due."""
        assert self.stack is not None
        self.stack.run(self._quiet_until(self._eod()))

    def _eod(self) -> datetime:
        stack = self.stack
        assert stack is not None
        return stack.session.close - timedelta(minutes=stack.params.eod_minutes_before_close)

    async def _quiet_until(self, when: datetime) -> None:
        stack = self.stack
        assert stack is not None
        while stack.next_minute < when:
            await self._quiet(1)

    @precondition(lambda self: self.open_day)
    @rule(answer=st.sampled_from(list(ORDER_ANSWERS)), times=st.integers(1, 5))
    def next_order_answer(self, answer: str, times: int) -> None:
        """The broker's answer to the next ``times`` orders submitted."""
        faults = {name: times for name in ORDER_ANSWERS[answer]}
        self._answer(ORDER_ANSWERS, faults)

    @precondition(lambda self: self.open_day)
    @rule(answer=st.sampled_from(list(CANCEL_ANSWERS)), hold=st.sampled_from(HOLDS))
    def next_cancel_answer(self, answer: str, hold: float) -> None:
        """The broker's answer to the next cancel request."""
        self._answer(CANCEL_ANSWERS, CANCEL_ANSWERS[answer])
        self.stack.exchange.faults.update(hold_seconds=hold)  # type: ignore[union-attr]

    @precondition(lambda self: self.open_day)
    @rule(answer=st.sampled_from(list(REPLACE_ANSWERS)), hold=st.sampled_from(HOLDS))
    def next_replace_answer(self, answer: str, hold: float) -> None:
        """The broker's answer to the next replace request."""
        self._answer(REPLACE_ANSWERS, REPLACE_ANSWERS[answer])
        self.stack.exchange.faults.update(hold_seconds=hold)  # type: ignore[union-attr]

    @precondition(lambda self: self.stack is not None and not self.open_day)
    @rule()
    def after_the_close(self) -> None:
        """The session's minutes are all played: the day ends (once)."""
        if not self.closed:
            self._run_to_close()

    def _run_to_close(self) -> None:
        """Quiet bars to the close, then minutes past it (every example ends so)."""
        stack = self.stack
        assert stack is not None

        async def rest_of_day() -> None:
            while stack.next_minute <= stack.session.close:
                if self._nothing_left():
                    await stack.day_over()
                    await stack.until(stack.session.close)
                    break
                await self._quiet(1)
            await stack.until(stack.session.close + 5 * MINUTE)

        stack.run(rest_of_day())
        self.closed = True

    def _nothing_left(self) -> bool:
        stack = self.stack
        assert stack is not None
        open_orders = stack.ledger.orders(strategy=STRATEGY, open_only=True)
        return (
            stack.mirror.position == 0
            and not stack.mirror.working_sells()
            and not open_orders
            and stack.strategy.plan(SYMBOL) is None
            and not stack.router.busy()
        )

    def teardown(self) -> None:
        """Every example ends with the day run to its close and judged there; unless a step
        already failed (hypothesis calls this in a ``finally``): then that failure stands."""
        if self.stack is None:
            return
        try:
            if not self.closed and sys.exc_info()[1] is None:
                self._run_to_close()
                self.check_all()
            with contextlib.suppress(InvalidArgument):  # run by hand, outside hypothesis
                self._count_what_happened()
        finally:
            self.stack.close()

    def _count_what_happened(self) -> None:
        """For ``--hypothesis-show-statistics``: which exits filled, which answers the
        broker gave (the model reaches every one)."""
        stack = self.stack
        assert stack is not None
        legs = {
            o["client_order_id"].split("-", 4)[-1].split("-")[0]
            for o in stack.mirror.orders.values()
            if o["side"] == "sell" and Decimal(o["filled_qty"]) > 0
        }
        event(f"sells filled: {', '.join(sorted(legs)) or 'none'}")
        for o in stack.mirror.orders.values():
            event(f"broker status seen: {o['status']}")

    # -- invariants --------------------------------------------------------------------

    def check_all(self) -> None:
        self.no_broken_promise_at_the_broker()
        self.never_short_in_the_ledger()
        self.flat_by_the_close()
        self.every_intent_reported_exactly_once()

    @invariant()
    def no_broken_promise_at_the_broker(self) -> None:
        """Never short, never two exit sells, never sells beyond the position, never
        unprotected beyond the allowance (judged at every broker update)."""
        if self.watchdog is None:
            return
        self.watchdog.check()
        assert not self.watchdog.violations, "\n".join(self.watchdog.violations)

    @invariant()
    def never_short_in_the_ledger(self) -> None:
        if self.stack is None:
            return
        held = self.stack.ledger.position_qty(STRATEGY, SYMBOL)
        assert held >= 0, f"SHORT in the ledger: {held}"

    @invariant()
    def flat_by_the_close(self) -> None:
        stack = self.stack
        if stack is None or stack.clock.now() <= stack.session.close:
            return
        broker, ledger = stack.mirror.position, stack.ledger.position_qty(STRATEGY, SYMBOL)
        assert broker == 0 and ledger == 0, (
            f"NOT FLAT AFTER THE CLOSE: broker holds {broker}, ledger {ledger}; open orders "
            f"{[(o.client_order_id, o.status) for o in stack.ledger.orders(open_only=True)]}"
        )

    @invariant()
    def every_intent_reported_exactly_once(self) -> None:
        stack = self.stack
        if stack is None:
            return
        emitted = stack.router.intents
        idle = not stack.router.busy()
        stop_intents = sum(1 for i in emitted if i.action in STOP_ACTIONS)
        stop_reports = sum(1 for u in stack.updates if u.kind == "stop")
        assert stop_reports <= stop_intents, (
            f"STOP REPORTED TWICE: {stop_reports} stop reports for {stop_intents} stop intents"
        )
        if idle:
            assert stop_reports == stop_intents, (
                f"STOP INTENT NOT REPORTED: {stop_reports} reports for {stop_intents} intents"
            )
        intents = Counter(_key(i) for i in emitted if i.action in ("buy", "sell"))
        finals = Counter((u.side, u.leg, u.signal_time) for u in stack.updates if _final(u))
        open_keys = {(o.side, o.leg, o.signal_time) for o in stack.ledger.orders(open_only=True)}
        for key, count in intents.items():
            told = finals.get(key, 0)
            what = f"{key[0]} {key[1]} signal {key[2]:%H:%M}Z"
            assert told <= count, f"INTENT REPORTED TWICE: {what}: {told} reports, {count} intents"
            if idle and key not in open_keys:
                statuses = [
                    (r.status, r.status_reason)
                    for r in stack.ledger.intents()
                    if _key(r.intent) == key
                ]
                assert told == count, (
                    f"INTENT NEVER REPORTED: {what}: {count} intents, {told} final reports "
                    f"(the ledger's intent row: {statuses})"
                )


def _key(intent: Intent) -> tuple[str, str, datetime]:
    return (intent.action, intent.leg, intent.signal_time)


def _final(update: Any) -> bool:
    """A report that ends a buy/sell intent: its order filled completely, ended with part or
    none of it filled (canceled, expired, rejected), or was never sent (rejected, qty 0)."""
    if update.leg == "protective_stop" or update.kind == "stop":
        return False
    if update.kind == "fill":
        return update.order_qty is not None and update.filled_qty >= update.order_qty
    return update.kind in ("rejected", "canceled", "expired")


ExitMachine.TestCase.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=30,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    print_blob=False,
)
TestExitMachine = pytest.mark.timeout(3600)(ExitMachine.TestCase)

assert {
    n for t in (ORDER_ANSWERS, CANCEL_ANSWERS, REPLACE_ANSWERS) for a in t.values() for n in a
} <= COUNTERS
