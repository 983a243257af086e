"""The NYSE session a bar belongs to, as the strategies see it (from the market calendar)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

# The exchange's time zone: sessions, daily bars and every ET time in logs are read in it.
NEW_YORK = ZoneInfo("America/New_York")


@dataclass(frozen=True, slots=True, kw_only=True)
class Session:
    """One regular session: ``open``/``close`` are aware UTC datetimes from the calendar
    (16:00 ET normally, 13:00 ET on early-close days)."""

    date: date
    open: datetime
    close: datetime

    def contains_bar(self, start: datetime, end: datetime) -> bool:
        """True when the bar ``[start, end)`` lies entirely inside ``[open, close]``."""
        return self.open <= start and end <= self.close
