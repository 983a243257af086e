"""What makes a bar from the broker a bar: checked where bars enter the daemon (the bar
stream and the REST bars), so a NaN, a zero or negative price, an inverted range or a
non-finite volume never reaches a strategy's indicators (one NaN poisons an ATR for good).
"""

from __future__ import annotations

import math

from strategies.api.model import Bar

# A price above this is a feed error, not a US equity quote (the dearest trade near $1M).
MAX_PRICE = 10_000_000.0


def bar_problem(bar: Bar) -> str | None:
    """Why ``bar`` cannot be a real bar, or None when it can."""
    prices = {"open": bar.open, "high": bar.high, "low": bar.low, "close": bar.close}
    for name, value in prices.items():
        if not math.isfinite(value) or not 0 < value < MAX_PRICE:
            return f"{name} {value!r} is not a price"
    if not math.isfinite(bar.volume) or bar.volume < 0:
        return f"volume {bar.volume!r} is not a volume"
    if not bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high:
        return f"open/close outside [low {bar.low}, high {bar.high}]"
    if bar.t.tzinfo is None:
        return "timestamp without a timezone"
    return None
