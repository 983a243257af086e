"""A seeded synthetic equity market: minute bars for a window, daily/hourly history before it.

Per symbol a random walk of session opens and closes (with overnight gaps) drives each
session's intraday path: a log-space Brownian bridge from open to close, sampled per minute
inside the minute window and per hour before it (history for indicator warm-up). Small caps
sometimes crash 15-40% intraday and then reclaim part of the drop (the Bear Trap shape).
Volume is U-shaped over the session. Hourly and daily bars are aggregated from the path.
Everything depends only on (seed, symbol, calendar window): same seed, same bars.

``generate_extra`` adds a full market's worth of made-up small caps (``QAAAA``, ``QAAAB``,
...) for a few sessions of minute bars and no history (``magellan sim --synthetic-symbols``):
each crashes on a session with probability ``CRASH_PROBABILITY``, so among 10,000 symbols
a few hundred crash on any day, as on a real full-market watch.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import numpy as np

from magellan_core.timeframes import DAY, HOUR, MINUTE
from magellan_sim.market.calendar import (
    Session,
    SessionCalendar,
    new_york_date,
    new_york_midnight,
)

HISTORY_SESSIONS = 300
DEFAULT_WINDOW_SESSIONS = 30
CRASH_PROBABILITY = 0.03


@dataclass(frozen=True, slots=True, kw_only=True)
class Profile:
    """How one symbol trades: starting price, daily volatility, volume, crash-prone."""

    price: float
    daily_vol: float
    daily_volume: int
    small_cap: bool = False


def _large(price: float, vol: float = 0.015, volume: int = 30_000_000) -> Profile:
    return Profile(price=price, daily_vol=vol, daily_volume=volume)


def _small(price: float, volume: int = 8_000_000) -> Profile:
    return Profile(price=price, daily_vol=0.05, daily_volume=volume, small_cap=True)


# Daily-trend, hourly-swing and Bear Trap universes (spec/strategies.md).
DEFAULT_PROFILES: dict[str, Profile] = {
    "GOOGL": _large(170.0),
    "GLD": _large(190.0, 0.009, 8_000_000),
    "META": _large(500.0, 0.02, 15_000_000),
    "AAPL": _large(190.0),
    "QQQ": _large(440.0, 0.012, 40_000_000),
    "SPY": _large(520.0, 0.009, 60_000_000),
    "MSFT": _large(420.0),
    "TSLA": _large(200.0, 0.035, 90_000_000),
    "AMZN": _large(180.0, 0.018),
    "IWM": _large(200.0, 0.012, 30_000_000),
    "NVDA": _large(120.0, 0.03, 250_000_000),
    "ONDS": _small(1.2),
    "ACB": _small(5.0),
    "AMC": _small(4.5, 20_000_000),
    "WKHS": _small(2.0),
    "MULN": _small(0.5, 40_000_000),
    "GOEV": _small(0.8),
    "BTCS": _small(2.5, 2_000_000),
    "SENS": _small(0.9),
    "DNUT": _small(12.0, 3_000_000),
    "CVNA": _small(150.0, 4_000_000),
    "PLUG": _small(3.0, 30_000_000),
    "KOSS": _small(6.0, 1_000_000),
    "TLRY": _small(1.8, 15_000_000),
    "DVLT": _small(1.5),
    "NVAX": _small(10.0, 5_000_000),
    "NTLA": _small(20.0, 2_000_000),
    "MARA": _small(20.0, 40_000_000),
    "RIOT": _small(10.0, 25_000_000),
    "OCGN": _small(1.1),
    "NKLA": _small(1.5),
    "GME": _small(22.0, 10_000_000),
}
UNKNOWN_PROFILE = _large(50.0, 0.02, 5_000_000)
EXTRA_PREFIX = "Q"

Columns = dict[str, np.ndarray]


def generate(
    *,
    seed: int,
    symbols: Iterable[str] | None,
    start: date | None,
    end: date | None,
    calendar: SessionCalendar,
) -> dict[tuple[str, str], Columns]:
    """Columns per (symbol, timeframe): minute bars for ``start..end`` sessions, hourly and
    daily bars for those plus ``HISTORY_SESSIONS`` sessions before ``start``."""
    window = _window(calendar, start, end)
    if not window:
        raise ValueError(f"no sessions between {start} and {end}")
    history = calendar.sessions_before(window[0].date, HISTORY_SESSIONS)
    layouts = [(_Layout.of(history, per_minute=False), False)] if history else []
    layouts.append((_Layout.of(window, per_minute=True), True))
    names = list(symbols) if symbols is not None else list(DEFAULT_PROFILES)
    out: dict[tuple[str, str], Columns] = {}
    for symbol in names:
        profile = DEFAULT_PROFILES.get(symbol, UNKNOWN_PROFILE)
        rng = np.random.default_rng([seed, zlib.crc32(symbol.encode())])
        builder = _SymbolBuilder(profile, rng)
        for layout, per_minute in layouts:
            crashes = np.zeros(len(layout.midnights), dtype=bool)
            if per_minute and profile.small_cap:
                crashes = rng.random(len(crashes)) < CRASH_PROBABILITY
                crashes[int(rng.integers(len(crashes)))] = True  # at least one per window
            builder.run(layout, crashes, per_minute)
        for timeframe, columns in builder.columns().items():
            out[(symbol, timeframe)] = columns
    return out


def extra_symbol(index: int) -> str:
    """The ``index``-th made-up symbol: ``Q`` and four letters (``QAAAA`` is 0)."""
    letters = ""
    for _ in range(4):
        index, digit = divmod(index, 26)
        letters = chr(ord("A") + digit) + letters
    return EXTRA_PREFIX + letters


def generate_extra(
    *, seed: int, count: int, start: date, sessions: int, calendar: SessionCalendar
) -> dict[tuple[str, str], Columns]:
    """Minute (and hourly, daily) bars of ``count`` made-up small caps for ``sessions``
    sessions from ``start``: prices $1-60 and daily volumes 0.5-20 M shares, log-uniform."""
    window = calendar.sessions_from(start, sessions)
    if not window:
        raise ValueError(f"no sessions from {start}")
    layout = _Layout.of(window, per_minute=True)
    out: dict[tuple[str, str], Columns] = {}
    for index in range(count):
        symbol = extra_symbol(index)
        rng = np.random.default_rng([seed, zlib.crc32(symbol.encode())])
        price = float(np.exp(rng.uniform(np.log(1.0), np.log(60.0))))
        volume = int(np.exp(rng.uniform(np.log(5e5), np.log(2e7))))
        builder = _SymbolBuilder(_small(round(price, 2), volume), rng, traps=True)
        builder.run(layout, rng.random(len(layout.midnights)) < CRASH_PROBABILITY, True)
        for timeframe, columns in builder.columns().items():
            out[(symbol, timeframe)] = columns
    return out


def _window(calendar: SessionCalendar, start: date | None, end: date | None) -> list[Session]:
    if start is None:
        anchor = end or _today(calendar)
        start = calendar.sessions_before(anchor, DEFAULT_WINDOW_SESSIONS // 3)[0].date
    if end is None:
        return calendar.sessions_from(start, DEFAULT_WINDOW_SESSIONS)
    return calendar.sessions(start, end)


def _today(calendar: SessionCalendar) -> date:
    """Today's New York date, clamped to the calendar (only used when no window is given)."""
    today = new_york_date(datetime.now(UTC))
    return min(max(today, calendar.first_date), calendar.last_date)


@dataclass(frozen=True, slots=True)
class _Layout:
    """Bar start times of a run of sessions, flattened, with each bar's session facts."""

    stamps: np.ndarray  # bar start (epoch seconds)
    lengths: np.ndarray  # bar length in minutes (the first hourly bar is 30 min)
    session: np.ndarray  # index of the bar's session within the run
    session_start: np.ndarray  # per bar: its session's open
    session_minutes: np.ndarray  # per bar: its session's length in minutes
    midnights: np.ndarray  # per session: 00:00 New York (daily bar stamp)

    @classmethod
    def of(cls, sessions: list[Session], per_minute: bool) -> _Layout:
        """Minute bars, or hour-aligned segments ([open, next hour), [hh:00, hh+1:00), ...)."""
        stamps, lengths, index, starts, spans = [], [], [], [], []
        for k, session in enumerate(sessions):
            start = int(session.open.timestamp())
            stop = int(session.close.timestamp())
            if per_minute:
                bar_starts = np.arange(start, stop, 60, dtype=np.int64)
            else:
                inner = np.arange((start // 3600 + 1) * 3600, stop, 3600, dtype=np.int64)
                bar_starts = np.concatenate([np.array([start], dtype=np.int64), inner])
            stamps.append(bar_starts)
            lengths.append(np.diff(np.append(bar_starts, stop)) / 60)
            index.append(np.full(len(bar_starts), k))
            starts.append(np.full(len(bar_starts), start))
            spans.append(np.full(len(bar_starts), (stop - start) // 60))
        midnights = [int(new_york_midnight(s.date).timestamp()) for s in sessions]
        return cls(
            stamps=np.concatenate(stamps),
            lengths=np.concatenate(lengths),
            session=np.concatenate(index),
            session_start=np.concatenate(starts),
            session_minutes=np.concatenate(spans),
            midnights=np.array(midnights, dtype=np.int64),
        )


class _SymbolBuilder:
    """Generates one symbol's bars over a layout of sessions."""

    def __init__(self, profile: Profile, rng: np.random.Generator, traps: bool = False) -> None:
        self.profile = profile
        self.rng = rng
        self.traps = traps  # each crash's bottom gets a bear-trap bar (generate_extra)
        self._bottoms: list[int] = []  # bar index of each crash's low in the current run
        self.last_close = profile.price * float(np.exp(rng.normal(0, 0.1)))
        self.rows: dict[str, list[Columns]] = {MINUTE: [], HOUR: [], DAY: []}

    def run(self, layout: _Layout, crashes: np.ndarray, per_minute: bool) -> None:
        """Generate every session of ``layout`` (vectorised across sessions)."""
        rng, vol = self.rng, self.profile.daily_vol
        sessions = len(layout.midnights)
        gaps = rng.normal(0, vol * 0.4, sessions)
        targets = rng.normal(0.0002, vol, sessions)
        log_open = np.log(self.last_close) + np.cumsum(gaps) + np.cumsum(targets) - targets
        first = np.flatnonzero(np.r_[True, layout.session[1:] != layout.session[:-1]])
        counts = np.diff(np.r_[first, len(layout.session)])
        steps = rng.normal(0, 1, len(layout.stamps)) * (vol / np.sqrt(counts))[layout.session]
        walk = np.cumsum(steps)
        walk -= np.repeat(walk[first] - steps[first], counts)  # restart at 0 each session
        position = np.arange(len(walk)) - np.repeat(first, counts) + 1
        fraction = position / counts[layout.session]
        session_end = walk[first + counts - 1]
        ends = walk - fraction * (session_end - targets)[layout.session]
        starts = np.where(position == 1, 0.0, np.r_[0.0, ends[:-1]])
        ends = ends + self._crashes(crashes, first, counts, ends.size)
        starts = np.where(position == 1, 0.0, np.r_[0.0, ends[:-1]])
        base = log_open[layout.session]
        bars = self._bars(layout, np.exp(base + starts), np.exp(base + ends))
        if self.traps:
            self._set_traps(bars)
        self._bottoms = []
        self.last_close = float(bars["close"][-1])
        daily = _aggregate(bars, layout.midnights[layout.session])
        self.rows[DAY].append(daily)
        if per_minute:
            self.rows[MINUTE].append(bars)
            self.rows[HOUR].append(_aggregate(bars, bars["t"] // 3600 * 3600))
        else:
            hourly = dict(bars, t=bars["t"] // 3600 * 3600)
            hourly["trade_count"] = np.full(len(bars["t"]), -1, dtype=np.int64)
            hourly["vwap"] = np.full(len(bars["t"]), np.nan)
            self.rows[HOUR].append(hourly)

    def _crashes(
        self, crashes: np.ndarray, first: np.ndarray, counts: np.ndarray, size: int
    ) -> np.ndarray:
        """Log offsets of crash-and-reclaim shapes on the sessions flagged in ``crashes``."""
        offsets = np.zeros(size)
        for k in np.flatnonzero(crashes):
            profile, bottom = self._crash_profile(int(counts[k]))
            offsets[first[k] : first[k] + counts[k]] = profile
            self._bottoms.append(int(first[k]) + bottom)
        return offsets

    def _set_traps(self, bars: Columns) -> None:
        """The bar after each crash's low undercuts the session's low so far and closes back
        above it on heavy volume, with a long lower wick: the shape Bear Trap buys."""
        for i in self._bottoms:
            if i + 1 >= len(bars["t"]) or i < 1:
                continue
            j = i + 1
            prior_low = float(bars["low"][i - 30 if i >= 30 else 0 : j].min())
            o = float(bars["open"][j])
            digits = 2 if o >= 1 else 4
            low = round(min(prior_low, o) * 0.985, digits)
            close = round(max(o, prior_low) * 1.012, digits)
            bars["low"][j] = low
            bars["close"][j] = close
            bars["high"][j] = max(float(bars["high"][j]), round(close * 1.002, digits))
            bars["volume"][j] = int(bars["volume"][j] * 4)
            if j + 1 < len(bars["t"]):
                k = j + 1
                bars["open"][k] = close
                bars["high"][k] = max(float(bars["high"][k]), close)
                bars["low"][k] = min(float(bars["low"][k]), close)

    def _crash_profile(self, steps: int) -> tuple[np.ndarray, int]:
        """Log offsets of one crash-and-reclaim session, and the bar index of its low."""
        rng = self.rng
        depth = float(rng.uniform(0.18, 0.40))
        begin = int(rng.integers(20, max(21, steps // 2)))
        fall = int(rng.integers(5, 30))
        recover = int(rng.integers(30, 90))
        reclaimed = float(rng.uniform(0.3, 0.9))
        points = np.minimum([0, begin, begin + fall, begin + fall + recover, steps], steps)
        settle = np.log(1 - depth * (1 - reclaimed))
        values = [0.0, 0.0, np.log(1 - depth), settle, settle]
        return np.interp(np.arange(1, steps + 1), points, values), min(begin + fall, steps - 1)

    def _bars(self, layout: _Layout, opens: np.ndarray, closes: np.ndarray) -> Columns:
        rng = self.rng
        n = len(opens)
        per_bar_vol = self.profile.daily_vol * np.sqrt(layout.lengths / layout.session_minutes)
        wick = np.abs(rng.normal(0, 1, (2, n))) * per_bar_vol * 0.6
        high = np.maximum(opens, closes) * np.exp(wick[0])
        low = np.minimum(opens, closes) * np.exp(-wick[1])
        decimals = np.where(np.minimum(opens, closes) >= 1, 2, 4)
        opens, closes, high, low = (_round(a, decimals) for a in (opens, closes, high, low))
        high = np.maximum.reduce([high, opens, closes])
        low = np.minimum.reduce([low, opens, closes])
        volume = self._volume(layout, opens, closes)
        return {
            "t": layout.stamps,
            "open": opens,
            "high": high,
            "low": low,
            "close": closes,
            "volume": volume,
            "trade_count": np.maximum(1, volume // 150),
            "vwap": np.round((opens + high + low + closes) / 4, 4),
        }

    def _volume(self, layout: _Layout, opens: np.ndarray, closes: np.ndarray) -> np.ndarray:
        # U-shape over the session: heavy at the open and the close, quiet at midday.
        centre = (layout.stamps - layout.session_start) / 60 + layout.lengths / 2
        x = centre / layout.session_minutes
        weight = (1 + 3 * (2 * x - 1) ** 2) * layout.lengths / layout.session_minutes
        moves = np.abs(np.log(closes / opens))
        stress = 1 + 20 * moves / self.profile.daily_vol  # big moves trade heavily
        noise = np.exp(self.rng.normal(0, 0.3, len(opens)))
        raw = weight * stress * noise
        totals = np.bincount(layout.session, weights=raw)
        day_factor = np.exp(self.rng.normal(0, 0.25, len(totals)))
        raw = raw / totals[layout.session] * day_factor[layout.session]
        return np.maximum(1, raw * self.profile.daily_volume).astype(np.int64)

    def columns(self) -> dict[str, Columns]:
        """All generated rows, concatenated per timeframe."""
        return {
            timeframe: {key: np.concatenate([c[key] for c in chunks]) for key in chunks[0]}
            for timeframe, chunks in self.rows.items()
            if chunks
        }


def _round(values: np.ndarray, decimals: np.ndarray) -> np.ndarray:
    scale = 10.0**decimals
    return np.round(values * scale) / scale


def _aggregate(bars: Columns, groups: np.ndarray) -> Columns:
    """Aggregate consecutive bars sharing a group stamp into one bar stamped with it."""
    starts = np.flatnonzero(np.concatenate([[True], groups[1:] != groups[:-1]]))
    ends = np.concatenate([starts[1:], [len(groups)]])
    volume = np.add.reduceat(bars["volume"], starts)
    # Real hourly/daily files carry no trade_count/vwap: leave them unknown here too.
    out: dict[str, Any] = {
        "t": groups[starts],
        "open": bars["open"][starts],
        "high": np.maximum.reduceat(bars["high"], starts),
        "low": np.minimum.reduceat(bars["low"], starts),
        "close": bars["close"][ends - 1],
        "volume": volume,
        "trade_count": np.full(len(starts), -1, dtype=np.int64),
        "vwap": np.full(len(starts), np.nan),
    }
    return out
