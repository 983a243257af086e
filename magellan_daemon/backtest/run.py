"""Drive a backtest: bars in time order to the runners, the exchange stepped with the clock.

Time moves in steps: every instant at which a strategy's drive hands it a bar (its
``backtest_instant``: a 1Min bar stamped ``t`` at ``t + 1 min``, a 1Hour bar at ``t + 1 h``,
a daily bar at its session's close + 5 minutes, when the daemon's daily signal runs), every
minute of a session for the strategies with a minute clock (time stops and the end of day),
and every session open + execution delay for the strategies that leave intents for the next
open. At each
step the clock is set, the exchange processes what became due (fills against the bars that
completed), the due next-open intents go to the router, the bars and the clock tick are
posted, and the step ends when every runner and lane is idle: the router, the order path,
the ledger and the strategies did exactly what the daemon would have done at that instant.
The bars and the tick are handed to an idle runner directly (``evaluate_now``: the same code
its worker runs, without a trip through its queue).

Bars before ``start`` warm the strategies up (no decisions), as in ``magellan signals``,
split-adjusted as of ``start`` (what the daemon asks Alpaca for). At 00:00 New York of each
ex-date of the corporate actions (one minute after, once the exchange has applied them) the
daemon's corporate-actions check runs: the ledger and the strategies are re-based before
the first bar of the ex-date, as the daemon's pre-open check does.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path

from magellan_daemon.backtest.bars_csv import iter_bars, symbol_files
from magellan_daemon.backtest.marks import CloseMarks
from magellan_daemon.backtest.signals_replay import adjusted_bar
from magellan_daemon.backtest.stack import Stack
from magellan_daemon.config.loading import StrategyConfig
from magellan_daemon.runtime.drives import drive_of
from magellan_daemon.runtime.strategy_runner import StrategyRunner
from magellan_daemon.timefmt import NEW_YORK
from strategies.api.model import Bar

MINUTE = timedelta(minutes=1)
SETTLE_SPINS = 200  # loop turns for the lanes to finish a step before time moves on


@dataclass
class StrategyTimeline:
    """One strategy's bars: the warm-up, and the driven bars by the instant they complete."""

    name: str
    runner: StrategyRunner
    history: list[Bar] = field(default_factory=list)
    steps: dict[datetime, list[Bar]] = field(default_factory=lambda: defaultdict(list))
    bars: int = 0
    minute_clock: bool = False
    opens: list[datetime] = field(default_factory=list)


@dataclass
class RunStats:
    """What a run measured, per strategy."""

    bars: dict[str, int]
    warmup_bars: dict[str, int]
    seconds: float  # wall time of the driven part (warm-up excluded)
    steps: int
    step_times: dict[str, list[datetime]]  # per strategy: the instants it was driven at


def load_timelines(
    stack: Stack,
    strategies: dict[str, StrategyConfig],
    bars_dir: Path,
    start: date,
    end: date,
) -> dict[str, StrategyTimeline]:
    """Every strategy's bars from ``bars_dir`` in its configured timeframe and symbols."""
    out = {}
    window = stack.sessions.between(start, end)
    for name, config in strategies.items():
        runner = stack.runners[name]
        spec = config.spec
        line = StrategyTimeline(name=name, runner=runner)
        drive = drive_of(spec.drive)
        line.minute_clock = drive.minute_clock
        if drive.executes_at_open:
            line.opens = [s.open + spec.execution_delay for s in window]
        files = symbol_files(bars_dir, runner.timeframe)
        wanted = files if spec.whole_market else {s: files[s] for s in spec.symbols if s in files}
        for symbol, file in wanted.items():
            for bar in iter_bars(file, symbol, runner.timeframe):
                day = bar.t.astimezone(NEW_YORK).date()
                if day < start:
                    line.history.append(bar)
                elif day <= end:
                    at = drive.backtest_instant(bar, stack.sessions)
                    if at is not None:
                        line.steps[at].append(bar)
                        line.bars += 1
        line.history.sort(key=lambda b: (b.t, b.symbol))
        line.history = _adjusted_as_of(stack, line.history, start)
        out[name] = line
    return out


def _adjusted_as_of(stack: Stack, bars: list[Bar], as_of: date) -> list[Bar]:
    """The warm-up bars split-adjusted as the broker would serve them on ``as_of``."""
    split = stack.splits.symbols()
    if not split:
        return bars
    out = []
    for bar in bars:
        if bar.symbol in split:
            factor = stack.splits.factor(bar.symbol, bar.t.astimezone(NEW_YORK).date(), as_of)
            bar = bar if factor == 1 else adjusted_bar(bar, factor)
        out.append(bar)
    return out


def _corporate_checks(stack: Stack, start: date, end: date) -> list[tuple[datetime, date]]:
    """(instant, ex-date) of every ex-date after ``start`` up to ``end``: a minute after the
    exchange applied the day's actions at 00:00 New York (an ex-date on ``start`` is in
    the warm-up's adjustment already, and nothing is held yet)."""
    days = sorted({a.ex_date for a in stack.actions if start < a.ex_date <= end})
    return [(datetime.combine(d, dtime(0, 1), NEW_YORK).astimezone(UTC), d) for d in days]


async def _corporate_until(stack: Stack, checks: list[tuple[datetime, date]], at: datetime) -> None:
    """The corporate-actions checks due by ``at``, in order (each consumed once)."""
    while checks and checks[0][0] <= at and stack.corporate is not None:
        when, day = checks.pop(0)
        await _broker_answers_until(stack, when)
        stack.clock.set(max(when, stack.clock.now()))
        stack.exchange.advance()
        if not _idle(stack):
            await _settle(stack)
        await stack.corporate.check(day, day)
        if not _idle(stack):
            await _settle(stack)


async def drive(
    stack: Stack,
    timelines: dict[str, StrategyTimeline],
    start: date,
    end: date,
    progress: Callable[[int, int], None] = lambda done, total: None,
    marks: CloseMarks | None = None,
) -> RunStats:
    """Run the backtest to its end; ``progress(done, total)`` is told how far it got;
    ``marks`` snapshots the positions at each session close (before the step after it)."""
    tasks = [asyncio.create_task(r.runner.run()) for r in timelines.values()]
    try:
        warm = {}
        for line in timelines.values():
            warm[line.name] = await line.runner.warmup(line.history) if line.history else 0
        schedule = _schedule(stack, timelines, start, end)
        checks = _corporate_checks(stack, start, end)
        began = time.perf_counter()
        for done, (at, work) in enumerate(schedule):
            if marks is not None:
                await _mark_closes(stack, marks, at)
            await _corporate_until(stack, checks, at)
            await _broker_answers_until(stack, at)
            await _step(stack, at, work)
            if stack.fatal:
                raise stack.fatal[0]
            if done % 2000 == 0:
                progress(done, len(schedule))
        seconds = time.perf_counter() - began
        if marks is not None:
            await _mark_closes(stack, marks, None)
        progress(len(schedule), len(schedule))
        for line in timelines.values():
            line.runner.save()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return RunStats(
        bars={n: line.bars for n, line in timelines.items()},
        warmup_bars=warm,
        seconds=seconds,
        steps=len(schedule),
        step_times={n: sorted(line.steps) for n, line in timelines.items()},
    )


Work = tuple[StrategyTimeline, list[Bar], bool]


async def _broker_answers_until(stack: Stack, at: datetime) -> None:
    """Cancels and replaces in flight complete at their own instants (the broker's latency)
    before the step at ``at``: each is an instant of its own, where the order path learns the
    answer and sends what waited for it (the sell after a stop's cancel)."""
    while (due := stack.exchange.next_due()) is not None and due < at:
        stack.clock.set(due)
        stack.exchange.advance()
        if not _idle(stack):
            await _settle(stack)


async def _mark_closes(stack: Stack, marks: CloseMarks, before: datetime | None) -> None:
    """Each session close before ``before`` (None: all left) is an instant of its own: the
    exchange processes what filled up to it (an order sent at the open of a daily strategy
    fills then, not at the next step), the lanes settle, and the positions are marked."""
    for close in marks.due(before):
        await _broker_answers_until(stack, close)
        stack.clock.set(close)
        stack.exchange.advance()
        if not _idle(stack):
            await _settle(stack)
        marks.take(close)


async def _step(stack: Stack, at: datetime, work: list[Work]) -> None:
    """One instant: the exchange, the due next-open intents, the bars and the tick, then
    the position guard at each minute of the clock."""
    tick_guard = any(line.minute_clock for line, _, _ in work)
    stack.clock.set(at)
    if stack.exchange.busy():
        # Fills, whose news is posted to the runners. With nothing working nor in flight the
        # exchange has nothing to say at ``at``: the next request catches it up in order.
        stack.exchange.advance()
    if not _idle(stack):
        await _settle(stack)
    routed = False
    for line, bars, opens in work:
        if opens:
            due, ids, _ = line.runner.due_pending()
            if due:
                stack.router.submit(due, ids)
                routed = True
        if not line.runner.idle:
            await _settle(stack)
        tick = at if line.minute_clock else None
        routed |= line.runner.evaluate_now(bars, tick)
    if routed or not _idle(stack):
        await _settle(stack)
    if stack.guard is not None and tick_guard and (stack.guard.watching or _holding(stack)):
        stack.guard.check()  # after the strategies had their turn, as the daemon's clock
        if not _idle(stack):
            await _settle(stack)


def _schedule(
    stack: Stack, timelines: dict[str, StrategyTimeline], start: date, end: date
) -> list[tuple[datetime, list[Work]]]:
    """Every step in time order with what each strategy gets at it."""
    minutes: set[datetime] = set()
    driven = [t for line in timelines.values() for t in line.steps]
    if driven and any(line.minute_clock for line in timelines.values()):
        # The minute clock runs through the sessions the bars cover, not the whole window:
        # a window of years around a few months of bars is not years of empty minutes.
        first = max(start, min(driven).astimezone(NEW_YORK).date())
        last = min(end, max(driven).astimezone(NEW_YORK).date())
        for s in stack.sessions.between(first, last):
            minutes.update(_session_minutes(s.open, s.close))
    instants: dict[datetime, list[Work]] = defaultdict(list)
    for line in timelines.values():
        opens = set(line.opens)
        mine = set(line.steps) | opens | (minutes if line.minute_clock else set())
        for at in mine:
            instants[at].append((line, line.steps.get(at, []), at in opens))
    return sorted(instants.items(), key=lambda item: item[0])


def _session_minutes(opened: datetime, closed: datetime) -> Iterable[datetime]:
    at = opened + MINUTE
    while at <= closed:
        yield at
        at += MINUTE


def _holding(stack: Stack) -> bool:
    """Any open position in the ledger (with none and no watch left, the guard's check
    would look at nothing)."""
    return stack.ledger.holds_any()


def _idle(stack: Stack) -> bool:
    return not stack.router.busy() and all(r.idle for r in stack.runners.values())


async def _settle(stack: Stack) -> None:
    """Let runners and lanes work until all are idle (or wait on the clock, which only the
    next step moves). Most steps route nothing and never get here: the event loop turns
    only for the steps that have orders or order news."""
    for _ in range(SETTLE_SPINS):
        if _idle(stack):
            return
        await asyncio.sleep(0)
