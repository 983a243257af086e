"""The daemon's one time zone and one stored time format.

Every instant is aware UTC inside the daemon; the ledger stores it as ISO-8601 with
microseconds and a ``Z``; session logic uses New York dates.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from strategies.api.session import NEW_YORK

__all__ = ["NEW_YORK", "iso", "new_york_day", "parse_iso", "session_date"]


_last_iso: tuple[datetime, str] | None = None


def iso(t: datetime) -> str:
    """UTC ISO-8601 with microseconds and a Z, the ledger's one time format.

    Built from the fields, not with ``strftime`` (a format string parsed on every row of
    every write), and the last answer is kept: a step writes many rows stamped with the same
    ``now``. Equal aware instants give equal text, so the memo is exact."""
    global _last_iso
    last = _last_iso
    if last is not None and last[0] == t and t.tzinfo is not None:
        return last[1]
    u = t.astimezone(UTC)
    if u.year < 1000:  # strftime writes such years unpadded: keep its text
        return u.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    text = (
        f"{u.year}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:{u.second:02d}"
        f".{u.microsecond:06d}Z"
    )
    if t.tzinfo is not None:
        _last_iso = (t, text)
    return text


def parse_iso(text: str) -> datetime:
    """Inverse of ``iso`` (also reads any ISO-8601 text with an offset or a Z)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def session_date(t: datetime) -> date:
    """The New York calendar date of ``t`` (the trading day a fill belongs to)."""
    return t.astimezone(NEW_YORK).date()


def new_york_day(day: date) -> tuple[datetime, datetime]:
    """The instants [start, end) of the New York calendar date ``day``, in UTC: the
    ``t`` with ``session_date(t) == day`` (23 or 25 hours on the days clocks change)."""
    start = datetime.combine(day, time(0), NEW_YORK)
    end = datetime.combine(day + timedelta(days=1), time(0), NEW_YORK)
    return start.astimezone(UTC), end.astimezone(UTC)
