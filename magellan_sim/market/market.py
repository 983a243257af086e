"""Bar store: per (symbol, timeframe) numpy arrays, queried without look-ahead.

A bar is only visible once it has completed: a 1Min bar stamped ``t`` at ``t + 1 min``, a
1Hour bar at ``t + 1 h``, a 1Day bar at its session's close. Every query takes ``now``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np

from magellan_core.timeframes import BAR_LENGTH, INTRADAY, MINUTE, TIMEFRAMES
from magellan_sim.market.bar_files import read_columns
from magellan_sim.market.calendar import SessionCalendar, new_york_date
from magellan_sim.market.seek import first_after, first_at_or_after
from magellan_sim.market.synthetic import generate, generate_extra

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SimBar:
    """One OHLCV bar; ``t`` is its aware UTC start."""

    symbol: str
    timeframe: str
    t: datetime
    open: float
    high: float
    low: float
    close: float
    volume: int
    trade_count: int | None
    vwap: float | None


class Series:
    """One symbol's bars of one timeframe as parallel arrays sorted by start time."""

    def __init__(
        self,
        symbol: str,
        timeframe: str,
        columns: dict[str, np.ndarray],
        calendar: SessionCalendar,
    ) -> None:
        self.symbol = symbol
        self.timeframe = timeframe
        self.t = columns["t"].astype(np.int64)
        self.open = columns["open"].astype(np.float64)
        self.high = columns["high"].astype(np.float64)
        self.low = columns["low"].astype(np.float64)
        self.close = columns["close"].astype(np.float64)
        self.volume = columns["volume"].astype(np.int64)
        self.trade_count = columns["trade_count"].astype(np.int64)  # -1 = unknown
        self.vwap = columns["vwap"].astype(np.float64)  # NaN = unknown
        self.done = _completion_times(self.t, timeframe, calendar)

    def __len__(self) -> int:
        return len(self.t)

    def completed_count(self, now: datetime) -> int:
        """Number of bars completed at ``now`` (they are a prefix: completion is monotonic)."""
        return first_after(self.done, now.timestamp())

    def index_range(self, start: datetime | None, end: datetime | None, now: datetime) -> range:
        """Indices of completed bars with ``start <= t <= end``."""
        lo = 0 if start is None else first_at_or_after(self.t, start.timestamp())
        hi = len(self.t) if end is None else first_after(self.t, end.timestamp())
        return range(lo, min(hi, self.completed_count(now)))

    def index_of_start(self, t: datetime) -> int | None:
        """Index of the bar that starts exactly at ``t``."""
        ts = t.timestamp()
        i = first_at_or_after(self.t, ts)
        return i if i < len(self.t) and self.t[i] == ts else None

    def first_completed_after(self, after: datetime) -> int | None:
        """Index of the first bar whose completion is strictly after ``after``."""
        i = first_after(self.done, after.timestamp())
        return i if i < len(self.t) else None

    def index_completing_at(self, t: datetime) -> int | None:
        """Index of the bar that completes exactly at ``t``."""
        ts = t.timestamp()
        i = first_at_or_after(self.done, ts)
        return i if i < len(self.t) and self.done[i] == ts else None

    def done_at(self, i: int) -> datetime:
        """Completion instant of bar ``i``."""
        return datetime.fromtimestamp(int(self.done[i]), UTC)

    def bar(self, i: int) -> SimBar:
        """Bar ``i`` as a value."""
        count = int(self.trade_count[i])
        vwap = float(self.vwap[i])
        return SimBar(
            symbol=self.symbol,
            timeframe=self.timeframe,
            t=datetime.fromtimestamp(int(self.t[i]), UTC),
            open=float(self.open[i]),
            high=float(self.high[i]),
            low=float(self.low[i]),
            close=float(self.close[i]),
            volume=int(self.volume[i]),
            trade_count=None if count < 0 else count,
            vwap=None if math.isnan(vwap) else vwap,
        )


def _completion_times(t: np.ndarray, timeframe: str, calendar: SessionCalendar) -> np.ndarray:
    if timeframe in INTRADAY:
        return t + int(BAR_LENGTH[timeframe].total_seconds())
    done = np.empty_like(t)
    for i, stamp in enumerate(t.tolist()):
        # Daily bars are stamped 00:00 New York; they complete at that session's close.
        day = _new_york_day(stamp)
        session = calendar.session(day)
        done[i] = int(session.close.timestamp()) if session else stamp + 86_400
    return done


def _new_york_day(stamp: int) -> date:
    return new_york_date(datetime.fromtimestamp(stamp, UTC))


SeriesLoader = Callable[[str, str], "Series | None"]


class MarketData:
    """Bars for a fixed symbol set, loaded lazily per (symbol, timeframe)."""

    def __init__(
        self, symbols: Iterable[str], loader: SeriesLoader, calendar: SessionCalendar
    ) -> None:
        self._symbols = sorted(set(symbols))
        self._loader = loader
        self._cache: dict[tuple[str, str], Series | None] = {}
        self.calendar = calendar

    @classmethod
    def from_dir(cls, path: Path | str, calendar: SessionCalendar | None = None) -> MarketData:
        """Bars from ``path/{1Min,1Hour,1Day}/SYMBOL.csv.gz`` (the shared data layout)."""
        root = Path(path)
        if not root.is_dir():
            raise FileNotFoundError(f"bars directory not found: {root}")
        cal = calendar or SessionCalendar()
        symbols = {
            f.name.removesuffix(".csv.gz")
            for tf in TIMEFRAMES
            if (root / tf).is_dir()
            for f in (root / tf).glob("*.csv.gz")
        }

        def load(symbol: str, timeframe: str) -> Series | None:
            file = root / timeframe / f"{symbol}.csv.gz"
            return _read_csv(file, symbol, timeframe, cal) if file.is_file() else None

        return cls(symbols, load, cal)

    @classmethod
    def synthetic(
        cls,
        seed: int = 0,
        symbols: Iterable[str] | None = None,
        start: date | None = None,
        end: date | None = None,
        calendar: SessionCalendar | None = None,
        extra: tuple[int, date, int] | None = None,
    ) -> MarketData:
        """Seeded synthetic market (see ``sim.synthetic``); ``start``..``end`` is the window
        of minute bars, daily/hourly history reaches 300 sessions before ``start``.
        ``extra``: (count, first session, sessions) of made-up small caps on top."""
        cal = calendar or SessionCalendar()
        generated = generate(seed=seed, symbols=symbols, start=start, end=end, calendar=cal)
        if extra is not None:
            count, first, sessions = extra
            generated |= generate_extra(
                seed=seed, count=count, start=first, sessions=sessions, calendar=cal
            )
        series = {key: Series(key[0], key[1], columns, cal) for key, columns in generated.items()}
        names = {symbol for symbol, _ in series}
        return cls(names, lambda s, tf: series.get((s, tf)), cal)

    # -- catalogue -------------------------------------------------------------------------

    def symbols(self) -> list[str]:
        """All symbols with bars of any timeframe."""
        return list(self._symbols)

    def has_symbol(self, symbol: str) -> bool:
        """Whether ``symbol`` has bars."""
        return symbol in self._symbols

    def series(self, symbol: str, timeframe: str) -> Series | None:
        """The (lazily loaded) series, or None if there is no such file/data."""
        key = (symbol, timeframe)
        if key not in self._cache:
            self._cache[key] = self._loader(symbol, timeframe) if symbol in self._symbols else None
        return self._cache[key]

    def price_series(self, symbol: str) -> Series | None:
        """The finest series available for ``symbol`` (1Min, else 1Hour, else 1Day): what the
        latest-bar endpoint serves. Orders match against ``sim.tape`` minutes instead."""
        for timeframe in TIMEFRAMES:
            found = self.series(symbol, timeframe)
            if found is not None and len(found):
                return found
        return None

    # -- no-look-ahead queries ---------------------------------------------------------------

    def bars(
        self,
        symbol: str,
        timeframe: str,
        start: datetime | None,
        end: datetime | None,
        now: datetime,
    ) -> list[SimBar]:
        """Completed bars with ``start <= t <= end``, ascending."""
        found = self.series(symbol, timeframe)
        if found is None:
            return []
        return [found.bar(i) for i in found.index_range(start, end, now)]

    def latest_bar(self, symbol: str, now: datetime) -> SimBar | None:
        """Latest completed bar of the finest timeframe (1Min where there is minute data)."""
        found = self.price_series(symbol)
        if found is None:
            return None
        count = found.completed_count(now)
        return found.bar(count - 1) if count else None

    def minute_bars_ending_at(self, end: datetime) -> list[SimBar]:
        """Every symbol's 1Min bar that starts at ``end - 1 min`` (published at ``end``)."""
        start = datetime.fromtimestamp(end.timestamp() - 60, UTC)
        found = (self.bar_starting_at(symbol, start) for symbol in self._symbols)
        return [bar for bar in found if bar is not None]

    def bar_starting_at(self, symbol: str, t: datetime) -> SimBar | None:
        """The 1Min bar of ``symbol`` that starts at ``t``, if one traded."""
        found = self.series(symbol, MINUTE)
        if found is None:
            return None
        i = found.index_of_start(t)
        return None if i is None else found.bar(i)


def _read_csv(file: Path, symbol: str, timeframe: str, calendar: SessionCalendar) -> Series:
    columns = read_columns(file)  # parsed once, then from the cache (``bar_files``)
    log.debug("loaded %d %s bars of %s from %s", len(columns["t"]), timeframe, symbol, file)
    return Series(symbol, timeframe, columns, calendar)
