"""The position guard against the simulator (real alpaca-py, real SQLite, virtual time).

Each test is a sequence of broker refusals that once left a position unprotected or held
overnight (issue 17): a refused stop, a refused exit after it, refusals until the close.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from magellan_core.corporate_actions import CorporateAction
from magellan_daemon.execution.position_guard import GuardedStrategy, PositionGuard
from magellan_daemon.reconciliation.corporate_watch import CorporateActionWatch
from magellan_daemon.sessions import SessionBook
from magellan_sim.market.calendar import SessionCalendar
from strategies.api.session import Session
from tests.daemon.execution.test_order_path import NOW, _hold, _intent, _resting, _run
from tests.daemon.stack import Stack, order_stack

CLOSE = datetime(2024, 12, 10, 21, 0, tzinfo=UTC)  # 16:00 ET


@pytest.fixture
async def stack(bars_dir: Path, tmp_path: Path) -> AsyncIterator[Stack]:
    async with order_stack(bars_dir, tmp_path, NOW) as s:
        yield s


def _guard(stack: Stack, confirm: Callable[[], Awaitable[object]] | None = None) -> PositionGuard:
    """The guard of a Bear Trap position; with ``confirm``, its look at the broker after
    the close."""
    calendar = SessionCalendar()
    sessions = SessionBook(
        [
            Session(date=s.date, open=s.open, close=s.close)
            for s in calendar.sessions(datetime(2024, 12, 9).date(), datetime(2024, 12, 12).date())
        ]
    )
    return PositionGuard(
        ledger=stack.ledger,
        router=stack.router,
        clock=stack.clock,
        sessions=lambda: sessions,
        strategies=[GuardedStrategy(name="bear_trap", protective_stop=True, intraday=True)],
        close_margin=timedelta(minutes=5),
        confirm=confirm,
    )


async def _check(stack: Stack, guard: PositionGuard) -> None:
    """One guard check, and the broker's answers to what it asked (virtual time runs)."""
    guard.check()
    stack.clock.set_speed(20)
    try:
        await stack.until(lambda: not stack.router.busy(), "the guard's orders")
    finally:
        stack.clock.set_speed(0)


def _held(stack: Stack) -> int:
    return int(stack.ledger.position_qty("bear_trap", "AMC"))


async def test_a_refused_stop_is_placed_again_by_the_guard_after_one_bar(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    await _hold(stack, stop=None)
    held = _held(stack)
    stack.exchange.faults.update(refuse_next_orders=1)
    await _run(stack, [_intent("place_stop", "protective_stop", held, stop_price=3.0)], 5)
    assert _resting(stack) == 0
    guard = _guard(stack)
    await _check(stack, guard)
    assert guard.unprotected == {}  # the strategy's own retry comes first (one bar)
    await stack.advance(70)
    with caplog.at_level(logging.WARNING):
        await _check(stack, guard)
    assert any(r.levelno == logging.ERROR and "UNPROTECTED" in r.message for r in caplog.records)
    await stack.until(lambda: _resting(stack) == held, "the guard's stop to rest")
    await _check(stack, guard)
    assert guard.unprotected == {}
    stops = [o for o in stack.broker_orders() if o["type"] == "stop"]
    assert [(o["status"], o["stop_price"]) for o in stops][-1][1] == "3"


async def test_a_stop_the_broker_keeps_refusing_ends_in_a_market_exit(stack: Stack) -> None:
    await _hold(stack, stop=None)
    held = _held(stack)
    stack.exchange.faults.update(refuse_next_orders=2)  # ours, then the guard's
    await _run(stack, [_intent("place_stop", "protective_stop", held, stop_price=3.0)], 5)
    guard = _guard(stack)
    await _check(stack, guard)
    await stack.advance(70)
    await _check(stack, guard)  # the stop again: refused
    assert _resting(stack) == 0
    await stack.advance(10)  # past the backoff
    await _check(stack, guard)  # no stop rests: out at market
    await stack.advance(120)
    await stack.until(lambda: _held(stack) == 0, "the guard's exit to fill")
    assert stack.broker_position("AMC") == 0
    await _check(stack, guard)
    assert guard.unprotected == {} and guard.held_past_close == {}


async def test_an_intraday_position_is_flattened_before_the_close_through_refusals(
    stack: Stack,
) -> None:
    await _hold(stack)  # under its stop
    guard = _guard(stack)
    stack.clock.set(CLOSE - timedelta(minutes=5))
    await stack.advance(1)
    # The strategy's exit is not sent (its stop still holds the shares); the guard's first two
    # flattens are refused.
    await _run(stack, [_intent("sell", "eod", _held(stack), signal_time=CLOSE)], 5)
    stack.exchange.faults.update(refuse_next_orders=2)
    for _ in range(8):  # a check a minute, as the daemon's clock
        await _check(stack, guard)
        await stack.advance(30)
        if _held(stack) == 0:
            break
    await stack.until(lambda: _held(stack) == 0, "flat before the close")
    assert stack.clock.now() < CLOSE
    assert stack.broker_position("AMC") == 0
    sells = [o for o in stack.broker_orders() if o["side"] == "sell" and o["type"] == "market"]
    assert sells[-1]["status"] == "filled"
    refused = [o for o in stack.ledger.orders(strategy="bear_trap") if o.status == "rejected"]
    assert [o.leg for o in refused] == ["guard_flatten", "guard_flatten"]


async def test_held_past_the_close_is_an_error_and_exits_at_the_next_opening_auction(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    await _hold(stack, stop=None)
    guard = _guard(stack)
    stack.clock.set(CLOSE + timedelta(minutes=10))
    await stack.advance(1)
    with caplog.at_level(logging.WARNING):
        await _check(stack, guard)
    assert guard.held_past_close == {("bear_trap", "AMC"): _held(stack)}
    assert any("HELD PAST THE CLOSE" in r.message for r in caplog.records)
    assert not [o for o in stack.broker_orders() if o["time_in_force"] == "opg"]  # not yet
    assert guard.auction_due(stack.clock.now()) == datetime(2024, 12, 11, 0, 0, tzinfo=UTC)
    stack.clock.set(datetime(2024, 12, 11, 0, 0, 30, tzinfo=UTC))  # 19:00:30 ET
    await stack.advance(1)
    await _check(stack, guard)
    [opg] = [o for o in stack.broker_orders() if o["time_in_force"] == "opg"]
    assert Decimal(opg["qty"]) == _held(stack)
    stack.clock.set(datetime(2024, 12, 11, 14, 29, tzinfo=UTC))
    await stack.advance(120)  # the open: the auction fills it
    await stack.until(lambda: _held(stack) == 0, "the auction exit to fill")
    await _check(stack, guard)
    assert guard.held_past_close == {}


async def test_a_sell_that_filled_unheard_before_the_close_is_asked_for_not_called_held(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """The EOD sell filled at the broker before the close, but its fill news was withheld:
    the ledger still holds. The guard asks the broker (the open-order poll) before it calls
    the position held past the close; the answer books the fill, and no ERROR is logged."""
    await _hold(stack, stop=None)
    stack.clock.set(CLOSE - timedelta(minutes=3))
    await stack.advance(1)
    stack.exchange.faults.update(drop_next_fill_events=1)
    await _run(stack, [_intent("sell", "eod", _held(stack), signal_time=CLOSE)], 5)
    await stack.advance(240)  # the next bar fills it; the stream says nothing
    assert stack.broker_position("AMC") == 0 and _held(stack) > 0
    guard = _guard(stack, confirm=lambda: stack.recovery.poll_open_orders("main"))
    with caplog.at_level(logging.WARNING):
        await _check(stack, guard)
        await stack.until(lambda: _held(stack) == 0, "the poll to book the fill")
        await _check(stack, guard)
    assert not any("HELD PAST THE CLOSE" in r.message for r in caplog.records)
    assert guard.held_past_close == {}


async def test_a_look_at_the_broker_cut_short_is_no_answer(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """The look at the broker after the close is cancelled before it answers (the daemon
    stopping: asyncio cancels what is pending, and the ledger closes next). A cancelled look
    is no answer: the guard calls nothing held past the close on it, runs no check from it,
    and asks again at its next check."""
    await _hold(stack, stop=None)
    stack.clock.set(CLOSE + timedelta(minutes=1))
    await stack.advance(1)
    never = asyncio.Event()
    asked: list[int] = []

    async def look() -> None:
        asked.append(1)
        await never.wait()

    guard = _guard(stack, confirm=look)
    with caplog.at_level(logging.WARNING):
        guard.check()
        await asyncio.sleep(0)
        assert asked == [1]
        for pending in guard._confirmations.values():
            pending.cancel()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert not any("HELD PAST THE CLOSE" in r.message for r in caplog.records)
        assert not any(r.levelno >= logging.ERROR for r in caplog.records)
        guard.check()  # the next check asks again rather than take the cancel as an answer
        await asyncio.sleep(0)
    assert asked == [1, 1]
    assert guard.held_past_close == {}
    never.set()


async def test_a_look_at_the_broker_that_fails_as_the_daemon_stops_checks_nothing(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """The daemon stops while the guard's look at the broker after the close is out. Its
    teardown stops the guard, then closes the brokers (the look then fails: "cannot schedule
    new futures after shutdown") and the ledger. The guard, stopped, runs no check from that
    answer: one on the closed ledger was an ERROR at every such shutdown (bench_fullmarket)."""
    await _hold(stack, stop=None)
    stack.clock.set(CLOSE + timedelta(minutes=1))
    await stack.advance(1)
    broker_closed = asyncio.Event()

    async def look() -> None:
        await broker_closed.wait()
        raise RuntimeError("cannot schedule new futures after shutdown")

    guard = _guard(stack, confirm=look)
    guard.check()  # asks the broker
    await asyncio.sleep(0)
    checks: list[int] = []
    check = guard.check

    def counted() -> None:
        checks.append(1)
        check()

    guard.check = counted  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING):
        guard.stop()  # the daemon's teardown, before its brokers and its ledger close
        broker_closed.set()
        for _ in range(3):
            await asyncio.sleep(0)
    assert checks == []
    assert not any(r.levelno >= logging.ERROR for r in caplog.records)


async def test_the_auction_exit_sells_the_post_split_shares(bars_dir: Path, tmp_path: Path) -> None:
    """Held past the close across a 3-for-1 split of AMC (ex 2024-12-11) with the daemon
    running: the simulator cancels the auction exit at 00:00 and the guard, told at once,
    sends it again for the ledger's pre-split shares; once the corporate-actions check has
    split the ledger, the auction exit is sent again for every post-split share."""
    split = CorporateAction(
        "AMC", "forward_split", date(2024, 12, 11), Decimal(3), Decimal(1), Decimal(0)
    )
    async with order_stack(bars_dir, tmp_path, NOW, corporate_actions=[split]) as stack:
        await _hold(stack, stop=None)
        held = _held(stack)
        guard = _guard(stack)
        stack.clock.set(datetime(2024, 12, 11, 0, 0, 30, tzinfo=UTC))  # 19:00:30 ET
        await stack.advance(1)
        await _check(stack, guard)
        [opg] = [o for o in stack.broker_orders() if o["time_in_force"] == "opg"]
        assert Decimal(opg["qty"]) == held
        stack.clock.set(datetime(2024, 12, 11, 5, 0, 30, tzinfo=UTC))  # 00:00:30 ET
        await stack.advance(1)  # the split: the exit canceled, AMC three times the shares
        await stack.until(lambda: not stack.ledger.orders(open_only=True), "the cancel")
        assert stack.broker_position("AMC") == 3 * held
        await _check(stack, guard)  # the cancel's news: sent again, for the old count
        watch = CorporateActionWatch(
            ledger=stack.ledger,
            path=stack.path,
            clock=stack.clock,
            runners={},
            watched=lambda: {"main": {"AMC"}},
        )
        assert await watch.check(split.ex_date, split.ex_date)
        assert _held(stack) == 3 * held
        await stack.advance(60)
        await _check(stack, guard)
        await stack.until(lambda: not stack.router.busy(), "the guard's orders")
        working = [
            o
            for o in stack.broker_orders()
            if o["time_in_force"] == "opg" and o["status"] in ("new", "accepted")
        ]
        assert sum(Decimal(o["qty"]) for o in working) == 3 * held
        stack.clock.set(datetime(2024, 12, 11, 14, 29, tzinfo=UTC))
        await stack.advance(120)  # the open: the auction sells every share
        await stack.until(lambda: _held(stack) == 0, "the auction exit to fill")
        assert stack.broker_position("AMC") == 0
