"""Bar timeframes: their names, the aliases Alpaca's data API accepts, and how long a bar of
each lasts (one table for the daemon and the simulator, so they agree on when a bar ends).

A bar is stamped at its start. A ``1Min`` or ``1Hour`` bar stamped ``t`` covers
``[t, t + BAR_LENGTH[tf])``. ``BAR_LENGTH[DAY]`` is a calendar day; a daily bar is
*complete* at its session's close, which only a calendar knows (the simulator's market).
"""

from __future__ import annotations

from datetime import timedelta

MINUTE = "1Min"
HOUR = "1Hour"
DAY = "1Day"
TIMEFRAMES = (MINUTE, HOUR, DAY)
TIMEFRAME_ALIASES = {
    "1Min": MINUTE,
    "1T": MINUTE,
    "1Hour": HOUR,
    "1H": HOUR,
    "1Day": DAY,
    "1D": DAY,
}
BAR_LENGTH = {  # how long a bar of each timeframe lasts
    MINUTE: timedelta(minutes=1),
    HOUR: timedelta(hours=1),
    DAY: timedelta(days=1),
}
INTRADAY = (MINUTE, HOUR)  # the timeframes whose bars end BAR_LENGTH after they start


def parse_timeframe(text: str) -> str | None:
    """Canonical timeframe name for ``text`` (1Min/1Hour/1Day or 1T/1H/1D), else None."""
    return TIMEFRAME_ALIASES.get(text)
