"""The minute tape: every symbol's intraday prices, for matching and valuation.

For each (symbol, New York date) the tape uses the finest bars that date has: the real
1Min bars, else a minute path generated from the date's 1Hour bars (each hour's 60
minutes), else from its 1Day bar (the regular session's minutes); see ``sim.intraday``.
Orders are matched against these minute bars, and last prices, quotes and position values
come from them, so intraday fills and valuations agree. The REST bar endpoints and the bar
stream never serve generated minutes: they serve the real bars only (``MarketData``).

Generated days are built lazily and a few are kept (an LRU), so a daemon watching a handful
of daily-only symbols costs a few hundred small bars per day.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np

from magellan_core.timeframes import BAR_LENGTH, DAY, HOUR, MINUTE, TIMEFRAMES
from magellan_sim.market.calendar import SessionCalendar, new_york_date, new_york_midnight
from magellan_sim.market.intraday import minute_path
from magellan_sim.market.market import MarketData, Series, SimBar
from magellan_sim.market.seek import first_after, first_at_or_after

CACHED_DAYS = 64
ONE_MINUTE = BAR_LENGTH[MINUTE]


@dataclass(frozen=True, slots=True)
class DayTape:
    """One symbol-day of minute bars: completion instants (epoch seconds) and the bars."""

    done: np.ndarray
    bars: tuple[SimBar, ...] | None = None  # a generated path
    series: Series | None = None  # or a slice [lo, lo + len(done)) of the real 1Min series
    lo: int = 0

    def bar(self, i: int) -> SimBar:
        """Minute bar ``i`` of the day."""
        if self.bars is not None:
            return self.bars[i]
        assert self.series is not None
        return self.series.bar(self.lo + i)

    def first_done_after(self, after: datetime) -> int | None:
        """Index of the first minute completing strictly after ``after``."""
        i = first_after(self.done, after.timestamp())
        return i if i < len(self.done) else None

    def last_done_by(self, now: datetime) -> int | None:
        """Index of the last minute completed at or before ``now``."""
        i = first_after(self.done, now.timestamp()) - 1
        return i if i >= 0 else None

    def done_exactly_at(self, t: datetime) -> int | None:
        """Index of the minute completing exactly at ``t``."""
        stamp = t.timestamp()
        i = first_at_or_after(self.done, stamp)
        return i if i < len(self.done) and self.done[i] == stamp else None


class Tape:
    """Minute bars of every symbol, real or generated from coarser bars (see module doc)."""

    def __init__(
        self, market: MarketData, calendar: SessionCalendar, cached_days: int = CACHED_DAYS
    ) -> None:
        self._market = market
        self._calendar = calendar
        self._cached_days = cached_days
        self._days: OrderedDict[tuple[str, date], DayTape | None] = OrderedDict()

    def forget(self) -> None:
        """Drop every cached day: the market gained bars since (a test feeding bars as it
        goes)."""
        self._days.clear()

    def next_completion(self, symbol: str, after: datetime) -> datetime | None:
        """The first instant strictly after ``after`` at which a minute of ``symbol``
        completes, or None when its bars end before that."""
        first_day: date | None = None
        while (day := self._next_date(symbol, after, first_day)) is not None:
            tape = self._day(symbol, day)
            i = tape.first_done_after(after) if tape else None
            if tape is not None and i is not None:
                return datetime.fromtimestamp(int(tape.done[i]), UTC)
            first_day = day + timedelta(days=1)  # that date's minutes all completed already
        return None

    def bar_completing_at(self, symbol: str, t: datetime) -> SimBar | None:
        """The minute bar of ``symbol`` that completes exactly at ``t``, if any."""
        tape = self._day(symbol, new_york_date(t - ONE_MINUTE))
        i = tape.done_exactly_at(t) if tape else None
        return None if tape is None or i is None else tape.bar(i)

    def latest_bar(self, symbol: str, now: datetime) -> SimBar | None:
        """The latest minute bar of ``symbol`` completed at or before ``now``."""
        bound = now
        while (day := self._latest_date(symbol, bound)) is not None:
            tape = self._day(symbol, day)
            i = tape.last_done_by(now) if tape else None
            if tape is not None and i is not None:
                return tape.bar(i)
            # every bar of ``day`` completes after its midnight: only earlier dates from here
            bound = min(bound, new_york_midnight(day))
        return None

    def last_price(self, symbol: str, now: datetime) -> float | None:
        """Close of the latest completed minute, or None before the first bar."""
        bar = self.latest_bar(symbol, now)
        return bar.close if bar else None

    # -- which dates have bars -------------------------------------------------------------

    def _next_date(self, symbol: str, after: datetime, first_day: date | None) -> date | None:
        """The earliest date, not before ``first_day``, with a bar completing after ``after``."""
        found: list[date] = []
        for timeframe in TIMEFRAMES:
            series = self._market.series(symbol, timeframe)
            if series is None:
                continue
            i = series.first_completed_after(after)
            if i is not None and first_day is not None:
                start = new_york_midnight(first_day).timestamp()
                i = max(i, first_at_or_after(series.t, start))
            if i is not None and i < len(series):
                found.append(new_york_date(datetime.fromtimestamp(int(series.t[i]), UTC)))
        return min(found, default=None)

    def _latest_date(self, symbol: str, bound: datetime) -> date | None:
        """The latest date with a bar that began before ``bound`` (a coarse bar still in
        progress already has completed minutes)."""
        found: list[date] = []
        for timeframe in TIMEFRAMES:
            series = self._market.series(symbol, timeframe)
            began = first_at_or_after(series.t, bound.timestamp()) if series else 0
            if series is not None and began:
                stamp = datetime.fromtimestamp(int(series.t[began - 1]), UTC)
                found.append(new_york_date(stamp))
        return max(found, default=None)

    # -- one symbol-day ----------------------------------------------------------------------

    def _day(self, symbol: str, day: date) -> DayTape | None:
        key = (symbol, day)
        if key in self._days:
            self._days.move_to_end(key)
            return self._days[key]
        tape = self._build(symbol, day)
        self._days[key] = tape
        if len(self._days) > self._cached_days:
            self._days.popitem(last=False)
        return tape

    def _build(self, symbol: str, day: date) -> DayTape | None:
        start = new_york_midnight(day).timestamp()
        end = new_york_midnight(day + timedelta(days=1)).timestamp()
        for timeframe in TIMEFRAMES:
            series = self._market.series(symbol, timeframe)
            if series is None:
                continue
            lo = first_at_or_after(series.t, start)
            hi = first_at_or_after(series.t, end)
            if lo == hi:
                continue
            if timeframe == MINUTE:
                return DayTape(done=series.done[lo:hi], series=series, lo=lo)
            bars = self._generated(series, lo, hi, day)
            done = np.array([int(b.t.timestamp()) + 60 for b in bars], dtype=np.int64)
            return DayTape(done=done, bars=tuple(bars))
        return None

    def _generated(self, series: Series, lo: int, hi: int, day: date) -> list[SimBar]:
        bars: list[SimBar] = []
        for i in range(lo, hi):
            coarse = series.bar(i)
            bars += minute_path(coarse, self._minutes(coarse, day))
        return bars

    def _minutes(self, coarse: SimBar, day: date) -> list[datetime]:
        if coarse.timeframe == HOUR:
            return [coarse.t + k * ONE_MINUTE for k in range(60)]
        assert coarse.timeframe == DAY
        session = self._calendar.session(day)
        if session is None:
            return []  # a daily bar on a non-trading day: nothing to trade against
        count = int((session.close - session.open).total_seconds()) // 60
        return [session.open + k * ONE_MINUTE for k in range(count)]
