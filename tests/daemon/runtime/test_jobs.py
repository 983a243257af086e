"""Which session the next daily signal owns, and which bars a warm-up may feed (pure)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from magellan_daemon.runtime.jobs import owed_signal_session, warmup_bars
from magellan_daemon.sessions import SessionBook
from strategies.api.model import Bar
from strategies.api.session import Session

NY = ZoneInfo("America/New_York")


def _session(day: date, close: int = 16) -> Session:
    return Session(
        date=day,
        open=datetime(day.year, day.month, day.day, 9, 30, tzinfo=NY),
        close=datetime(day.year, day.month, day.day, close, 0, tzinfo=NY),
    )


BOOK = SessionBook(
    [_session(date(2024, 11, 26)), _session(date(2024, 11, 27)), _session(date(2024, 11, 29), 13)]
)


def _at(day: int, hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(2024, 11, day, hh, mm, ss, tzinfo=NY)


@pytest.mark.parametrize(
    ("now", "owed"),
    [
        (_at(26, 15, 59, 59), None),  # the session is still open
        (_at(26, 16, 0, 0), date(2024, 11, 26)),  # from the close on
        (_at(26, 16, 0, 30), date(2024, 11, 26)),
        (_at(26, 16, 4, 59), date(2024, 11, 26)),
        (_at(26, 16, 6), date(2024, 11, 26)),
        (_at(27, 3, 0), date(2024, 11, 26)),  # a night down: still owed before the open
        (_at(27, 9, 30), None),  # the next session has opened
        (_at(28, 12, 0), date(2024, 11, 27)),  # Thanksgiving: Wednesday's is owed
        (_at(29, 13, 0), date(2024, 11, 29)),  # the early close
    ],
)
def test_the_owed_signal_session(now: datetime, owed: date | None) -> None:
    found = owed_signal_session(BOOK, now)
    assert (found.date if found else None) == owed


def _bar(t: datetime, timeframe: str = "1Day") -> Bar:
    return Bar(symbol="SPY", timeframe=timeframe, t=t, open=1, high=1, low=1, close=1, volume=1)  # type: ignore[arg-type]


def test_a_daily_warmup_never_feeds_the_owed_bar_nor_a_forming_one() -> None:
    bars = [_bar(datetime(2024, 11, d, tzinfo=NY)) for d in (26, 27)]
    at_16_02 = warmup_bars(bars, "1Day", BOOK, _at(26, 16, 2), timedelta(days=1))
    assert at_16_02 == []  # 11-26 is owed to the signal; 11-27 has not even happened
    in_session = warmup_bars(bars, "1Day", BOOK, _at(27, 11, 0), timedelta(days=1))
    assert [b.t.day for b in in_session] == [26]  # 11-27's bar is still forming


def test_an_intraday_warmup_feeds_only_completed_bars() -> None:
    start = _at(27, 10, 0)
    bars = [_bar(start + timedelta(hours=h), "1Hour") for h in range(3)]
    fed = warmup_bars(
        bars, "1Hour", BOOK, start + timedelta(hours=2, minutes=30), timedelta(hours=1)
    )
    assert [b.t for b in fed] == [start, start + timedelta(hours=1)]
