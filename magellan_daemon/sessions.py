"""The trading calendar as the daemon sees it: sessions from the broker's ``/v2/calendar``.

Never a weekday list: holidays and early closes (13:00 on 2024-11-29) come from the broker.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from datetime import date, datetime, timedelta

from magellan_daemon.timefmt import NEW_YORK
from strategies.api.session import Session


class SessionBook:
    """Sessions sorted by date, with the lookups the scheduler and strategies need."""

    def __init__(self, sessions: Sequence[Session]) -> None:
        self._sessions = sorted(sessions, key=lambda s: s.date)
        self._dates = [s.date for s in self._sessions]
        self._by_date = {s.date: s for s in self._sessions}

    def __len__(self) -> int:
        return len(self._sessions)

    def on(self, day: date) -> Session | None:
        """The session on New York date ``day``, or None (weekend, holiday)."""
        return self._by_date.get(day)

    def for_bar_start(self, t: datetime) -> Session | None:
        """The session whose New York date is the date of ``t`` (bars, jobs)."""
        return self.on(t.astimezone(NEW_YORK).date())

    def current_or_next(self, t: datetime) -> Session | None:
        """The session open at ``t``, else the next one to open."""
        i = bisect.bisect_left(self._dates, t.astimezone(NEW_YORK).date())
        for session in self._sessions[i:]:
            if t < session.close:
                return session
        return None

    def next_after(self, session: Session) -> Session | None:
        """The session after ``session``."""
        i = bisect.bisect_right(self._dates, session.date)
        return self._sessions[i] if i < len(self._sessions) else None

    def previous(self, t: datetime) -> Session | None:
        """The last session that closed at or before ``t``."""
        i = bisect.bisect_right(self._dates, t.astimezone(NEW_YORK).date())
        for session in reversed(self._sessions[:i]):
            if session.close <= t:
                return session
        return None

    def last_date(self) -> date | None:
        """The last date the book knows."""
        return self._dates[-1] if self._dates else None

    def between(self, first: date, last: date) -> list[Session]:
        """The sessions from ``first`` to ``last`` (both included), in date order."""
        lo = bisect.bisect_left(self._dates, first)
        hi = bisect.bisect_right(self._dates, last)
        return self._sessions[lo:hi]

    def span(self) -> tuple[date, date] | None:
        """First and last dates covered."""
        return (self._dates[0], self._dates[-1]) if self._dates else None


def calendar_window(now: datetime) -> tuple[date, date]:
    """The calendar range the daemon loads: ~14 months back (daily warm-up), 2 months ahead."""
    today = now.astimezone(NEW_YORK).date()
    return today - timedelta(days=430), today + timedelta(days=60)
