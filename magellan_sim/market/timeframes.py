"""Bar timeframes of the simulator: names, aliases, lengths (shared by the market data and
the synthetic market that generates it)."""

from __future__ import annotations

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
BAR_SECONDS = {MINUTE: 60, HOUR: 3600}


def parse_timeframe(text: str) -> str | None:
    """Canonical timeframe name for ``text`` (1Min/1Hour/1Day or 1T/1H/1D), else None."""
    return TIMEFRAME_ALIASES.get(text)
