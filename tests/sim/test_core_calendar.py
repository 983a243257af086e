"""The NYSE session calendar: holidays, early closes, open/close queries."""

from __future__ import annotations

from datetime import UTC, date, datetime

from magellan_sim.market.calendar import SessionCalendar


def test_holidays_and_early_close() -> None:
    cal = SessionCalendar()
    assert cal.session(date(2024, 11, 28)) is None  # Thanksgiving
    assert cal.session(date(2025, 1, 9)) is None  # national day of mourning (Carter)
    friday = cal.session(date(2024, 11, 29))
    assert friday is not None
    assert friday.open == datetime(2024, 11, 29, 14, 30, tzinfo=UTC)
    assert friday.close == datetime(2024, 11, 29, 18, 0, tzinfo=UTC)  # 13:00 New York
    days = [s.date for s in cal.sessions(date(2024, 11, 27), date(2024, 12, 2))]
    assert days == [date(2024, 11, 27), date(2024, 11, 29), date(2024, 12, 2)]


def test_open_close_queries() -> None:
    cal = SessionCalendar()
    before_open = datetime(2024, 12, 10, 14, 0, tzinfo=UTC)
    at_open = datetime(2024, 12, 10, 14, 30, tzinfo=UTC)
    assert not cal.is_open(before_open)
    assert cal.is_open(at_open)
    assert cal.next_open(before_open) == at_open
    assert cal.next_open(at_open) == datetime(2024, 12, 11, 14, 30, tzinfo=UTC)
    assert cal.next_close(at_open) == datetime(2024, 12, 10, 21, 0, tzinfo=UTC)
    close = datetime(2024, 12, 10, 21, 0, tzinfo=UTC)
    assert not cal.is_open(close)  # [open, close)
    assert cal.session_at(close) is None
    assert cal.previous_close(close) == close
    # Over the 2025-01-09 closure: Wednesday's close leads to Friday's open.
    assert cal.next_open(datetime(2025, 1, 8, 22, 0, tzinfo=UTC)) == datetime(
        2025, 1, 10, 14, 30, tzinfo=UTC
    )
