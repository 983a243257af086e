"""What each drive plans and when the backtest feeds it (``runtime.drives``, pure): the
hourly jobs just after each clock-hour bar inside the session, the daily signal at the close
+ 5 minutes (also when it is owed at startup), and no job for the minute stream."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from magellan_daemon.runtime.drives import DRIVES, drive_of
from magellan_daemon.sessions import SessionBook
from strategies.api.descriptor import Drive
from strategies.api.model import Bar
from strategies.api.session import Session

NY = ZoneInfo("America/New_York")
FULL = Session(
    date=date(2024, 11, 27),
    open=datetime(2024, 11, 27, 9, 30, tzinfo=NY),
    close=datetime(2024, 11, 27, 16, 0, tzinfo=NY),
)
EARLY = Session(
    date=date(2024, 11, 29),
    open=datetime(2024, 11, 29, 9, 30, tzinfo=NY),
    close=datetime(2024, 11, 29, 13, 0, tzinfo=NY),
)
BOOK = SessionBook([FULL, EARLY])


def _times(jobs: list) -> list[str]:
    return [j.when.astimezone(NY).strftime("%H:%M:%S") for j in jobs]


@pytest.mark.parametrize(
    ("session", "times"),
    [
        (FULL, ["11:00:02", "12:00:02", "13:00:02", "14:00:02", "15:00:02", "16:00:02"]),
        (EARLY, ["11:00:02", "12:00:02", "13:00:02"]),
    ],
)
def test_hourly_jobs_follow_each_completed_clock_hour(session: Session, times: list[str]) -> None:
    jobs = drive_of("hourly_bars").session_jobs(session, session.open - timedelta(hours=8))
    assert _times(jobs) == times
    assert (
        jobs[0].key == f"hourly-{jobs[0].arg.isoformat()}" and jobs[0].label == "hourly evaluation"
    )
    later = drive_of("hourly_bars").session_jobs(session, session.open + timedelta(hours=2))
    assert _times(later) == times[1:]  # the bars that ended before now are not planned


def test_the_daily_signal_at_the_close_plus_five_minutes_and_when_owed() -> None:
    daily = drive_of("daily_signal")
    assert _times(daily.session_jobs(EARLY, EARLY.open)) == ["13:05:00"]
    assert daily.session_jobs(FULL, FULL.close + timedelta(minutes=6)) == []
    at_night = datetime(2024, 11, 28, 3, 0, tzinfo=NY)
    (owed,) = daily.owed_jobs(BOOK, at_night)
    assert (owed.key, owed.when, owed.arg) == ("daily-signal-2024-11-27", at_night, FULL)
    assert daily.owed_jobs(BOOK, EARLY.open) == []


def test_the_minute_stream_plans_nothing_and_streams() -> None:
    minute = drive_of("minute_stream")
    assert minute.session_jobs(FULL, FULL.open) == [] and minute.owed_jobs(BOOK, FULL.close) == []
    features = {n: (d.bar_stream, d.minute_clock, d.executes_at_open) for n, d in DRIVES.items()}
    assert features == {
        "minute_stream": (True, True, False),
        "hourly_bars": (False, False, True),
        "daily_signal": (False, False, True),
    }


@pytest.mark.parametrize(
    ("drive", "timeframe", "start", "fed_at"),
    [
        ("minute_stream", "1Min", datetime(2024, 11, 27, 9, 30, tzinfo=NY), "09:31"),
        ("hourly_bars", "1Hour", datetime(2024, 11, 27, 10, 0, tzinfo=NY), "11:00"),
        ("hourly_bars", "1Min", datetime(2024, 11, 27, 10, 0, tzinfo=NY), "10:01"),
        ("daily_signal", "1Day", datetime(2024, 11, 29, 0, 0, tzinfo=NY), "13:05"),
    ],
)
def test_the_backtest_feeds_a_bar_when_the_daemon_would(
    drive: Drive, timeframe: str, start: datetime, fed_at: str
) -> None:
    bar = Bar(symbol="X", timeframe=timeframe, t=start, open=1, high=1, low=1, close=1, volume=1)  # type: ignore[arg-type]
    at = drive_of(drive).backtest_instant(bar, BOOK)
    assert at is not None and at.astimezone(NY).strftime("%H:%M") == fed_at


def test_an_unknown_drive_is_named() -> None:
    with pytest.raises(KeyError, match="known: minute_stream, hourly_bars, daily_signal"):
        drive_of("weekly")  # type: ignore[arg-type]
