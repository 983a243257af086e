"""Re-basing a strategy's state across a split (pure).

On a split's ex-date every price before it is divided by the split's ratio
(``new_rate / old_rate``: 10 for a 10-for-1, 0.05 for a 1-for-20) and every share count
multiplied by it, which is what the broker does to a position and what adjusted bars show.
A strategy's state built from the raw bars before the split is re-based the same way here,
so the first bar after the split meets indicators on its own scale. Each function is exact
for the state it scales: the same state as a warm-up on the adjusted bars would have built
(up to float rounding), which the tests check against adjusted history.

- RSI: the previous close and both smoothed averages are prices (or price differences,
  which a linear recursion keeps linear): divided; the value (a ratio of the averages) is
  unchanged.
- ATR: its previous close and every true range in its window: divided.
- Volume mean: volumes are multiplied (adjusted volume is shares at the new scale).
- Session levels (open, high, low and their priors): divided.
- A trade plan: its price levels and entry price divided, its share counts multiplied and
  rounded down (the broker pays the fraction as cash in lieu; the ledger's post-split
  quantity, which the daemon's ``sync`` hands over next, is the truth).
"""

from __future__ import annotations

import math
from typing import Any

from strategies.lib.indicators import ATR, RSI, SessionTracker, VolumeMean

_EPSILON = 1e-9  # 3 * (1/3) must still be 1 share after float arithmetic


def shares_after(qty: int, ratio: float) -> int:
    """Whole shares of ``qty`` after a split of ``ratio`` (the fraction is cash in lieu)."""
    return math.floor(qty * ratio + _EPSILON) if qty > 0 else 0


def price_after(price: float | None, ratio: float) -> float | None:
    """A price on the post-split scale (None and non-finite values stay as they are)."""
    if price is None or not math.isfinite(price):
        return price
    return price / ratio


def rebase_rsi(rsi: RSI, ratio: float) -> None:
    """Scale an RSI's price state by ``1 / ratio``; its value does not change."""
    rsi.prev_close = price_after(rsi.prev_close, ratio)
    rsi.avg_gain = price_after(rsi.avg_gain, ratio)
    rsi.avg_loss = price_after(rsi.avg_loss, ratio)


def rebase_atr(atr: ATR, ratio: float) -> None:
    """Scale an ATR's previous close and every true range of its window by ``1 / ratio``."""
    atr.prev_close = price_after(atr.prev_close, ratio)
    mean = atr.mean
    mean.buffer = [tr / ratio for tr in mean.buffer]
    mean._mean = None  # taken again from the scaled window when read


def rebase_volume(volume: VolumeMean, ratio: float) -> None:
    """Scale the volumes of a volume mean's window by ``ratio``."""
    mean = volume.mean
    mean.buffer = [v * ratio for v in mean.buffer]
    mean._mean = None


def rebase_session(tracker: SessionTracker, ratio: float) -> None:
    """Scale a session tracker's price levels by ``1 / ratio``."""
    for name in ("open", "high", "low", "prior_high", "prior_low"):
        setattr(tracker, name, price_after(getattr(tracker, name), ratio))


def rebase_marker_qty(marker: dict[str, Any] | None, ratio: float) -> None:
    """Scale the share counts of a pending-order marker (``qty``, ``filled``) in place."""
    if marker is None:
        return
    for key in ("qty", "filled"):
        if isinstance(marker.get(key), int):
            marker[key] = shares_after(marker[key], ratio)
