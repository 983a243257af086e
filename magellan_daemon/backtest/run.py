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
The ledger writes a run of ``STEPS_PER_TRANSACTION`` steps, and the instants before
them, in one transaction (``Ledger.one_transaction()``; the backtest's ledger is in memory
and has no restart to survive, so a commit per step would only cost).
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
import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import cast

import numpy as np

from magellan_core.timeframes import BAR_LENGTH, INTRADAY
from magellan_daemon.adapters.bar_batch import slotted_bar
from magellan_daemon.backtest.bars_csv import symbol_files
from magellan_daemon.backtest.marks import CloseMarks
from magellan_daemon.backtest.signals_replay import adjusted_bar
from magellan_daemon.backtest.stack import Stack
from magellan_daemon.config.loading import StrategyConfig
from magellan_daemon.runtime.drives import StrategyDrive, drive_of
from magellan_daemon.runtime.strategy_runner import StrategyRunner
from magellan_daemon.timefmt import NEW_YORK, new_york_day
from magellan_sim.market.bar_files import read_columns
from strategies.api.model import Bar, Timeframe

MINUTE = timedelta(minutes=1)
SETTLE_SPINS = 200  # loop turns for the lanes to finish a step before time moves on
STEPS_PER_TRANSACTION = 2000  # also how often progress is told


@dataclass
class StrategyTimeline:
    """One strategy's bars: the warm-up, and the driven bars by the instant they complete.

    The driven bars stay in columns (``_Driven``) until their step: a ``Bar`` is built only
    when it is handed to the strategy, not hundreds of thousands of them up front."""

    name: str
    runner: StrategyRunner
    history: list[Bar] = field(default_factory=list)
    steps: dict[datetime, range] = field(default_factory=dict)  # rows of ``driven`` per instant
    bars: int = 0
    minute_clock: bool = False
    opens: list[datetime] = field(default_factory=list)
    driven: _Driven | None = None

    def bars_at(self, at: datetime) -> list[Bar]:
        """The bars handed to the strategy at ``at`` (none if it has none then)."""
        rows = self.steps.get(at)
        if rows is None or self.driven is None:
            return []
        return self.driven.bars(rows)


@dataclass
class _Driven:
    """The driven bars of one strategy as columns, sorted by the instant each is handed
    over (within an instant the runner orders them by time and symbol itself)."""

    timeframe: Timeframe
    symbols: list[str]
    symbol: np.ndarray  # index into ``symbols``
    t: np.ndarray  # bar start, epoch seconds
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def bars(self, rows: range) -> list[Bar]:
        a, b = rows.start, rows.stop
        names, tf = self.symbols, self.timeframe
        times: dict[float, datetime] = {}  # the rows of one instant share a few bar times
        return [
            slotted_bar(
                names[s],
                tf,
                times.get(t) or times.setdefault(t, datetime.fromtimestamp(t, UTC)),
                o,
                h,
                lo,
                c,
                v,
            )
            for s, t, o, h, lo, c, v in zip(
                self.symbol[a:b].tolist(),
                self.t[a:b].tolist(),
                self.open[a:b].tolist(),
                self.high[a:b].tolist(),
                self.low[a:b].tolist(),
                self.close[a:b].tolist(),
                self.volume[a:b].tolist(),
                strict=True,
            )
        ]


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
    """Every strategy's bars from ``bars_dir`` in its configured timeframe and symbols, read
    as columns (``bar_files``: parsed once, then cached)."""
    out = {}
    window = stack.sessions.between(start, end)
    first = new_york_day(start)[0].timestamp()  # New York date >= start
    after = new_york_day(end)[1].timestamp()  # New York date > end
    for name, config in strategies.items():
        runner = stack.runners[name]
        spec = config.spec
        timeframe = cast(Timeframe, runner.timeframe)
        line = StrategyTimeline(name=name, runner=runner)
        drive = drive_of(spec.drive)
        line.minute_clock = drive.minute_clock
        if drive.executes_at_open:
            line.opens = [s.open + spec.execution_delay for s in window]
        files = symbol_files(bars_dir, timeframe)
        wanted = files if spec.whole_market else {s: files[s] for s in spec.symbols if s in files}
        parts: list[tuple[int, dict[str, np.ndarray], np.ndarray]] = []
        symbols = list(wanted)
        for k, (symbol, file) in enumerate(wanted.items()):
            cols = read_columns(file)
            t = cols["t"]
            lo = int(np.searchsorted(t, first, "left"))
            hi = int(np.searchsorted(t, after, "left"))
            line.history += _bars(symbol, timeframe, cols, 0, lo)
            if hi > lo:
                driven = {c: v[lo:hi] for c, v in cols.items()}
                instants = _instants(drive, symbol, timeframe, driven, stack)
                parts.append((k, driven, instants))
        line.history.sort(key=lambda b: (b.t, b.symbol))
        line.history = _adjusted_as_of(stack, line.history, start)
        _index_steps(line, timeframe, symbols, parts)
        out[name] = line
    return out


def _bars(
    symbol: str, timeframe: Timeframe, cols: dict[str, np.ndarray], lo: int, hi: int
) -> list[Bar]:
    """Rows ``lo:hi`` of one file's columns as bars (the warm-up)."""
    if hi <= lo:
        return []
    one = _Driven(
        timeframe,
        [symbol],
        np.zeros(hi - lo, dtype=np.int64),
        *(cols[c][lo:hi] for c in ("t", "open", "high", "low", "close", "volume")),
    )
    return one.bars(range(0, hi - lo))


def _instants(
    drive: StrategyDrive,
    symbol: str,
    timeframe: Timeframe,
    cols: dict[str, np.ndarray],
    stack: Stack,
) -> np.ndarray:
    """When the drive hands each bar over, epoch seconds (-1: never). An intraday bar is
    handed over as it completes (``t`` + its length) in every drive that streams or fetches
    it: computed on the columns, and checked against the drive's own rule on the first bar.
    Other bars (daily: the session's close + 5 minutes) ask the drive bar by bar."""
    t = cols["t"]
    length = BAR_LENGTH.get(timeframe)
    if timeframe in INTRADAY and length is not None:
        at = t + int(length.total_seconds())
        first = _bars(symbol, timeframe, cols, 0, 1)[0]
        if drive.backtest_instant(first, stack.sessions) == datetime.fromtimestamp(at[0], UTC):
            return at
    out = np.empty_like(t)
    for i, bar in enumerate(_bars(symbol, timeframe, cols, 0, len(t))):
        when = drive.backtest_instant(bar, stack.sessions)
        out[i] = -1 if when is None else int(when.timestamp())
    return out


def _index_steps(
    line: StrategyTimeline,
    timeframe: Timeframe,
    symbols: list[str],
    parts: list[tuple[int, dict[str, np.ndarray], np.ndarray]],
) -> None:
    """All files' driven rows in one set of columns sorted by instant; ``line.steps``
    maps each instant to its rows."""
    if not parts:
        return
    instants = np.concatenate([p[2] for p in parts])
    keep = instants >= 0
    order = np.argsort(instants[keep], kind="stable")
    sym = np.concatenate([np.full(len(p[2]), p[0], dtype=np.int64) for p in parts])

    def column(name: str) -> np.ndarray:
        return np.concatenate([p[1][name] for p in parts])[keep][order]

    line.driven = _Driven(
        timeframe,
        symbols,
        sym[keep][order],
        *(column(c) for c in ("t", "open", "high", "low", "close", "volume")),
    )
    at = instants[keep][order]
    line.bars = len(at)
    cuts = np.flatnonzero(np.diff(at)) + 1
    starts = [0, *cuts.tolist()]
    stops = [*cuts.tolist(), len(at)]
    for a, b in zip(starts, stops, strict=True):
        line.steps[datetime.fromtimestamp(int(at[a]), UTC)] = range(a, b)


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
        steps = len(schedule.times)
        checks = _corporate_checks(stack, start, end)
        began = time.perf_counter()
        for first in range(0, steps, STEPS_PER_TRANSACTION):
            progress(first, steps)
            chunk = slice(first, first + STEPS_PER_TRANSACTION)
            # The ledger's writes of these steps, the lanes' and runners' included, are one
            # transaction (there is no restart to survive); an exception commits what was
            # written, as the daemon's autocommit would have left it (``ledger.connection``).
            with stack.ledger.one_transaction():
                for at, work in zip(schedule.times[chunk], schedule.works[chunk], strict=True):
                    if marks is not None:
                        await _mark_closes(stack, marks, at)
                    await _corporate_until(stack, checks, at)
                    await _broker_answers_until(stack, at)
                    await _step(stack, at, work)
                    if stack.fatal:
                        raise stack.fatal[0]
        seconds = time.perf_counter() - began
        if marks is not None:
            await _mark_closes(stack, marks, None)
        progress(steps, steps)
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
        steps=steps,
        step_times={n: sorted(line.steps) for n, line in timelines.items()},
    )


Work = tuple[StrategyTimeline, bool]  # the strategy, and whether its next-open intents are due


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


async def _step(stack: Stack, at: datetime, work: tuple[Work, ...]) -> None:
    """One instant: the exchange, the due next-open intents, the bars and the tick, then
    the position guard at each minute of the clock."""
    tick_guard = any(line.minute_clock for line, _ in work)
    stack.clock.set(at)
    if stack.exchange.busy():
        # Fills, whose news is posted to the runners. With nothing working nor in flight the
        # exchange has nothing to say at ``at``: the next request catches it up in order.
        stack.exchange.advance()
    if not _idle(stack):
        await _settle(stack)
    routed = False
    for line, opens in work:
        if opens:
            due, ids, _ = line.runner.due_pending()
            if due:
                stack.router.submit(due, ids)
                routed = True
        if not line.runner.idle:
            await _settle(stack)
        tick = at if line.minute_clock else None
        routed |= line.runner.evaluate_now(line.bars_at(at), tick)
    if routed or not _idle(stack):
        await _settle(stack)
    if stack.guard is not None and tick_guard and (stack.guard.watching or _holding(stack)):
        stack.guard.check()  # after the strategies had their turn, as the daemon's clock
        if not _idle(stack):
            await _settle(stack)


@dataclass(frozen=True)
class Schedule:
    """Every step's instant in time order and, at the same index, what each strategy gets
    then. Two flat lists with the works shared: a run has about 10^5 steps, and a list and
    two tuples built per step kept the cyclic GC busy (0.5 s of the 0.7 s this took for Bear
    Trap on the shared bars)."""

    times: list[datetime]
    works: list[tuple[Work, ...]]


def _schedule(
    stack: Stack, timelines: dict[str, StrategyTimeline], start: date, end: date
) -> Schedule:
    """Every step in time order with what each strategy gets at it."""
    lines = list(timelines.values())
    minutes: set[datetime] = set()
    stepped = [line for line in lines if line.steps]
    if stepped and any(line.minute_clock for line in lines):
        # The minute clock runs through the sessions the bars cover, not the whole window:
        # a window of years around a few months of bars is not years of empty minutes.
        # (``line.steps`` is in time order: ``_index_steps``.)
        earliest = min(next(iter(line.steps)) for line in stepped)
        latest = max(next(reversed(line.steps)) for line in stepped)
        first = max(start, earliest.astimezone(NEW_YORK).date())
        last = min(end, latest.astimezone(NEW_YORK).date())
        for s in stack.sessions.between(first, last):
            minutes.update(_session_minutes(s.open, s.close))
    # Per instant, two bits per strategy: it gets the step, and its next-open intents are due.
    masks: dict[datetime, int] = {}
    for i, line in enumerate(lines):
        gets, opens = 1 << (2 * i), 1 << (2 * i + 1)
        for at in itertools.chain(line.steps, minutes if line.minute_clock else ()):
            masks[at] = masks.get(at, 0) | gets
        for at in line.opens:
            masks[at] = masks.get(at, 0) | gets | opens
    shared: dict[int, tuple[Work, ...]] = {}

    def work(mask: int) -> tuple[Work, ...]:
        found = shared.get(mask)
        if found is None:
            found = shared[mask] = tuple(
                (line, bool(mask >> (2 * i + 1) & 1))
                for i, line in enumerate(lines)
                if mask >> (2 * i) & 1
            )
        return found

    times = sorted(masks)
    return Schedule(times, [work(masks[at]) for at in times])


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
