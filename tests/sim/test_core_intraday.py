"""The minute path inside a coarse bar (pure) and the minute tape built from the real bars."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from magellan_core.timeframes import HOUR, MINUTE
from magellan_sim.market.calendar import SessionCalendar
from magellan_sim.market.intraday import minute_path, path_seed
from magellan_sim.market.market import MarketData, SimBar
from magellan_sim.market.tape import Tape

START = datetime(2024, 12, 10, 14, 0, tzinfo=UTC)


def coarse(o: float, h: float, low: float, c: float, symbol: str = "X", volume: int = 6000):
    return SimBar(
        symbol=symbol,
        timeframe=HOUR,
        t=START,
        open=o,
        high=h,
        low=low,
        close=c,
        volume=volume,
        trade_count=None,
        vwap=None,
    )


def minutes(n: int) -> list[datetime]:
    return [START + timedelta(minutes=k) for k in range(n)]


@pytest.mark.parametrize(
    ("bar", "n"),
    [
        (coarse(100.0, 101.0, 99.0, 100.5), 60),
        (coarse(100.0, 101.0, 99.0, 100.5), 390),
        (coarse(100.0, 101.0, 99.0, 100.5), 1),
        (coarse(100.0, 101.0, 99.0, 100.5), 2),
        (coarse(100.0, 101.0, 99.0, 100.5), 3),
        (coarse(99.0, 101.0, 99.0, 101.0), 30),  # opens at the low, closes at the high
        (coarse(0.5123, 0.5301, 0.4987, 0.5002), 60),  # sub-dollar, four decimals
        (coarse(50.0, 50.0, 50.0, 50.0), 60),  # nothing traded away from one price
        (coarse(604.25, 605.8, 602.13, 603.26, "SPY", 36_678_421), 390),
    ],
)
def test_path_opens_touches_high_and_low_and_closes_within_range(bar: SimBar, n: int) -> None:
    path = minute_path(bar, minutes(n))
    assert [b.t for b in path] == minutes(n)
    assert {b.timeframe for b in path} == {MINUTE}
    assert path[0].open == bar.open
    assert path[-1].close == bar.close
    assert max(b.high for b in path) == bar.high
    assert min(b.low for b in path) == bar.low
    for before, after in itertools.pairwise(path):
        assert after.open == before.close  # one continuous path
    for b in path:
        assert bar.low <= b.low <= min(b.open, b.close) <= max(b.open, b.close) <= b.high
        assert b.high <= bar.high
    assert sum(b.volume for b in path) == bar.volume


def test_path_is_seeded_by_symbol_and_start_only() -> None:
    bar = coarse(100.0, 101.0, 99.0, 100.5)
    assert minute_path(bar, minutes(60)) == minute_path(bar, minutes(60))
    assert path_seed("X", START) == path_seed("X", START)
    assert path_seed("X", START) != path_seed("Y", START)
    # crc32(b"SPY|1733806800"): stable across runs and interpreters (hash() is salted)
    assert path_seed("SPY", datetime(2024, 12, 10, 5, 0, tzinfo=UTC)) == 3333850969
    other = coarse(100.0, 101.0, 99.0, 100.5, symbol="Y")
    assert [b.close for b in minute_path(other, minutes(60))] != [
        b.close for b in minute_path(bar, minutes(60))
    ]


def test_empty_minutes_give_an_empty_path() -> None:
    assert minute_path(coarse(1.0, 2.0, 0.5, 1.5), []) == []


@pytest.fixture(scope="module")
def tape(bars_dir: Path) -> Tape:
    calendar = SessionCalendar()
    return Tape(MarketData.from_dir(bars_dir, calendar), calendar)


@pytest.fixture(scope="module")
def market(bars_dir: Path) -> MarketData:
    return MarketData.from_dir(bars_dir, SessionCalendar())


def test_minute_symbols_use_their_real_bars(tape: Tape, market: MarketData) -> None:
    t = datetime(2024, 12, 10, 14, 31, tzinfo=UTC)
    assert tape.bar_completing_at("GME", t) == market.bar_starting_at(
        "GME", t - timedelta(minutes=1)
    )
    assert tape.latest_bar("GME", t + timedelta(seconds=30)) == market.latest_bar("GME", t)


def test_daily_only_symbol_has_the_session_minutes_of_its_day(tape: Tape) -> None:
    session_open = datetime(2024, 12, 10, 14, 30, tzinfo=UTC)
    close = datetime(2024, 12, 10, 21, 0, tzinfo=UTC)
    first = tape.bar_completing_at("SPY", session_open + timedelta(minutes=1))
    last = tape.bar_completing_at("SPY", close)
    assert first is not None and last is not None
    assert (first.t, first.open) == (session_open, 604.25)
    assert (last.t, last.close) == (close - timedelta(minutes=1), 603.26)
    assert tape.bar_completing_at("SPY", session_open) is None  # no pre-market path
    # Friday's close, then the next minute is Monday's first.
    friday_close = datetime(2024, 12, 13, 21, 0, tzinfo=UTC)
    monday = datetime(2024, 12, 16, 14, 31, tzinfo=UTC)
    assert tape.next_completion("SPY", friday_close) == monday
    # Before the open the last price is the previous close.
    before = tape.latest_bar("SPY", session_open - timedelta(minutes=5))
    assert before is not None and before.close == 604.3  # 2024-12-09's close


def test_hourly_symbol_has_every_minute_of_its_hours(tape: Tape) -> None:
    hour = datetime(2024, 12, 10, 14, 0, tzinfo=UTC)  # O 138.75 H 141.82 L 138.6 C 140.93
    path = [tape.bar_completing_at("NVDA", hour + timedelta(minutes=k + 1)) for k in range(60)]
    assert all(b is not None for b in path)
    assert path[0].open == 138.75 and path[-1].close == 140.93
    assert max(b.high for b in path) == 141.82 and min(b.low for b in path) == 138.6
    # a pre-market hour has its minutes too (valuation), matching skips them
    assert tape.bar_completing_at("NVDA", datetime(2024, 12, 10, 9, 1, tzinfo=UTC)) is not None


def test_nothing_before_the_first_bar_or_after_the_last(tape: Tape) -> None:
    assert tape.latest_bar("SPY", datetime(2018, 1, 2, 14, 0, tzinfo=UTC)) is None
    assert tape.next_completion("SPY", datetime(2026, 2, 1, tzinfo=UTC)) is None
    assert tape.next_completion("ZZZZ", datetime(2024, 12, 10, tzinfo=UTC)) is None
    assert tape.last_price("ZZZZ", datetime(2024, 12, 10, tzinfo=UTC)) is None


def test_daily_bar_minutes_follow_an_early_close(tape: Tape) -> None:
    # 2024-11-29 closes at 13:00 New York (18:00Z): 210 minutes
    opened = datetime(2024, 11, 29, 14, 30, tzinfo=UTC)
    day = tape._day("AMZN", date(2024, 11, 29))
    assert day is not None and len(day.done) == 210
    assert day.bar(0).t == opened
    assert tape.next_completion("AMZN", datetime(2024, 11, 29, 18, 0, tzinfo=UTC)) == (
        datetime(2024, 12, 2, 14, 31, tzinfo=UTC)
    )
