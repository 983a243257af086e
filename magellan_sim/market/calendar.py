"""NYSE sessions (exchange_calendars XNYS), precomputed once and queried with bisect."""

from __future__ import annotations

import bisect
import functools
import warnings
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import exchange_calendars

# The simulator imports nothing of the daemon or the strategies but the clock, so it keeps
# its own name for the exchange's time zone.
NEW_YORK = ZoneInfo("America/New_York")
FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2030, 12, 31)


@dataclass(frozen=True, slots=True)
class Session:
    """One regular trading session; ``open``/``close`` are aware UTC datetimes."""

    date: date
    open: datetime
    close: datetime


@functools.cache
def _xnys_sessions(first: date, last: date) -> tuple[Session, ...]:
    # Building the exchange_calendars schedule takes ~0.3 s: do it once per process.
    # exchange_calendars 4.13 uses a pandas API that pandas 3.1 deprecates (Pandas4Warning, a
    # DeprecationWarning); the result is right, the warning is not ours to fix.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        cal = exchange_calendars.get_calendar("XNYS", start=first.isoformat(), end=last.isoformat())
        schedule = cal.schedule
    return tuple(
        Session(
            date=day.date(),
            open=opened.to_pydatetime().astimezone(UTC),
            close=closed.to_pydatetime().astimezone(UTC),
        )
        for day, opened, closed in zip(
            schedule.index, schedule["open"], schedule["close"], strict=True
        )
    )


class SessionCalendar:
    """Regular NYSE sessions between ``first`` and ``last`` (holidays, early closes)."""

    def __init__(self, first: date = FIRST_DAY, last: date = LAST_DAY) -> None:
        self._sessions = _xnys_sessions(first, last)
        self._dates = [s.date for s in self._sessions]
        self._opens = [s.open for s in self._sessions]
        self._closes = [s.close for s in self._sessions]

    @property
    def first_date(self) -> date:
        """First session date covered."""
        return self._dates[0]

    @property
    def last_date(self) -> date:
        """Last session date covered."""
        return self._dates[-1]

    def session(self, day: date) -> Session | None:
        """The session on ``day`` (New York date), or None on a non-trading day."""
        i = bisect.bisect_left(self._dates, day)
        if i < len(self._dates) and self._dates[i] == day:
            return self._sessions[i]
        return None

    def sessions(self, start: date, end: date) -> list[Session]:
        """Sessions with ``start <= date <= end``."""
        lo = bisect.bisect_left(self._dates, start)
        hi = bisect.bisect_right(self._dates, end)
        return list(self._sessions[lo:hi])

    def session_at(self, t: datetime) -> Session | None:
        """The session whose ``[open, close)`` contains ``t``."""
        i = bisect.bisect_right(self._opens, t) - 1
        if i >= 0 and t < self._closes[i]:
            return self._sessions[i]
        return None

    def next_open(self, t: datetime) -> datetime:
        """First session open strictly after ``t``."""
        return self._opens[self._index_after(self._opens, t)]

    def next_close(self, t: datetime) -> datetime:
        """First session close strictly after ``t``."""
        return self._closes[self._index_after(self._closes, t)]

    def next_session(self, t: datetime) -> Session:
        """The session in progress at ``t``, else the next one to open."""
        current = self.session_at(t)
        return current or self._sessions[self._index_after(self._opens, t)]

    def previous_close(self, t: datetime) -> datetime | None:
        """Latest session close at or before ``t``."""
        i = bisect.bisect_right(self._closes, t) - 1
        return self._closes[i] if i >= 0 else None

    def sessions_before(self, day: date, count: int) -> list[Session]:
        """The ``count`` sessions strictly before ``day``."""
        hi = bisect.bisect_left(self._dates, day)
        return list(self._sessions[max(0, hi - count) : hi])

    def sessions_from(self, day: date, count: int) -> list[Session]:
        """The ``count`` sessions on or after ``day``."""
        lo = bisect.bisect_left(self._dates, day)
        return list(self._sessions[lo : lo + count])

    def is_open(self, t: datetime) -> bool:
        """Whether the regular session is open at ``t``."""
        return self.session_at(t) is not None

    def _index_after(self, instants: list[datetime], t: datetime) -> int:
        i = bisect.bisect_right(instants, t)
        if i >= len(instants):
            raise ValueError(f"{t.isoformat()} is beyond the calendar's last session")
        return i


def calendar_days(calendar: SessionCalendar, first: date, last: date) -> list[dict[str, str]]:
    """``GET /v2/calendar`` entries for the sessions from ``first`` to ``last`` inclusive
    (open/close as ``HH:MM`` New York, settlement on the next session)."""
    sessions = calendar.sessions(first, last + timedelta(days=10))
    out = []
    for i, session in enumerate(sessions):
        if session.date > last:
            break
        following = sessions[i + 1].date if i + 1 < len(sessions) else session.date
        out.append(
            {
                "date": session.date.isoformat(),
                "open": session.open.astimezone(NEW_YORK).strftime("%H:%M"),
                "close": session.close.astimezone(NEW_YORK).strftime("%H:%M"),
                "session_open": "0400",
                "session_close": "2000",
                "settlement_date": following.isoformat(),
            }
        )
    return out


def new_york_date(t: datetime) -> date:
    """The New York calendar date of an aware instant."""
    return t.astimezone(NEW_YORK).date()


def new_york_midnight(day: date) -> datetime:
    """00:00 New York on ``day``, in UTC (how daily bars are stamped)."""
    return datetime(day.year, day.month, day.day, tzinfo=NEW_YORK).astimezone(UTC)
