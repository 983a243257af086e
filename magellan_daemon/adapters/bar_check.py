"""What makes a bar from the broker a bar: checked where bars enter the daemon (the bar
stream and the REST bars), so a NaN, a zero or negative price, an inverted range or a
non-finite volume never reaches a strategy's indicators (one NaN poisons an ATR for good).

``row_problem`` is the same check on plain values: the bar socket checks each row of a frame
before any ``Bar`` exists (the columnar batch builds one only when a strategy evaluates it).
"""

from __future__ import annotations

import math
from datetime import datetime

from strategies.api.model import Bar

# A price above this is a feed error, not a US equity quote (the dearest trade near $1M).
MAX_PRICE = 10_000_000.0
_isfinite = math.isfinite


def bar_problem(bar: Bar) -> str | None:
    """Why ``bar`` cannot be a real bar, or None when it can."""
    return row_problem(bar.open, bar.high, bar.low, bar.close, bar.volume, bar.t)


def row_problem(
    open_: float, high: float, low: float, close: float, volume: float, t: datetime
) -> str | None:
    """Why a bar of these values cannot be a real bar, or None when it can."""
    # the common case first, in one expression: four finite prices in range, a sane volume
    if (
        0 < low <= open_ <= high < MAX_PRICE
        and low <= close <= high
        and _isfinite(volume)
        and volume >= 0
        and t.tzinfo is not None
    ):
        return None  # (a NaN fails every comparison; inf fails "< MAX_PRICE")
    prices = {"open": open_, "high": high, "low": low, "close": close}
    for name, value in prices.items():
        if not _isfinite(value) or not 0 < value < MAX_PRICE:
            return f"{name} {value!r} is not a price"
    if not _isfinite(volume) or volume < 0:
        return f"volume {volume!r} is not a volume"
    if not low <= min(open_, close) <= max(open_, close) <= high:
        return f"open/close outside [low {low}, high {high}]"
    if t.tzinfo is None:
        return "timestamp without a timezone"
    return None
