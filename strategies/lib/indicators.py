"""Incremental indicators: O(1) work and memory per bar, state serialisable to a plain dict.

Public interface (stable; the Bear Trap strategy imports ATR, VolumeMean, SessionTracker):

- ``RSI(period: int, method: "ema" | "wilder" = "ema")``; ``update(close) -> float | None``;
  attributes ``value``, ``bars``; property ``ready`` (``bars >= 3 * period``).
- ``ATR(period: int = 14)``; ``update(high, low, close) -> float | None`` (mean of the last
  ``period`` true ranges; None until ``period`` bars were seen); attribute ``value``.
- ``VolumeMean(window: int = 20)``; ``update(volume) -> float | None`` (mean of the last
  ``window`` volumes including this one; None until full); attribute ``value``.
- ``SessionTracker()``; ``update(day: date, open_, high, low) -> None``; attributes ``day``,
  ``open``, ``high``, ``low`` (the session so far, this bar included), ``prior_low`` /
  ``prior_high`` (the session's low/high *before* this bar; None on its first bar), ``bars``.
- Every class has ``to_dict() -> dict`` and ``from_dict(d) -> Self``.

Non-finite input (a NaN or infinite price or volume) is ignored: the update leaves the state
unchanged and returns the current value. The strategies skip such a bar before it reaches an
indicator and record the skip in their evaluation, so this is a second line of defence.

RSI definition (the reference the tests compare with, pandas):
``delta = close.diff()`` (the first bar has no delta), ``gain = delta.clip(lower=0)``,
``loss = (-delta).clip(lower=0)``, ``avg = x.ewm(alpha=a, adjust=False).mean()`` with
``a = 2 / (period + 1)`` ("ema") or ``1 / period`` ("wilder"); the first delta (second bar)
seeds the averages, as pandas does when it skips the leading NaN.
``rsi = 100 - 100 / (1 + avg_gain / avg_loss)``; ``avg_loss == 0`` gives 100, both 0 give 50.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import date
from typing import Any, Literal, Self

RsiMethod = Literal["ema", "wilder"]
# Minimum bars per RSI period before a value is trusted (spec: 3 * period).
WARMUP_FACTOR = 3


_isfinite = math.isfinite  # bound once: these checks run for every bar of every symbol


def rsi_from_averages(avg_gain: float, avg_loss: float) -> float:
    """RSI from the two smoothed averages, with the spec's zero rules."""
    if avg_loss == 0.0:
        return 50.0 if avg_gain == 0.0 else 100.0
    return 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)


class RSI:
    """Relative strength index on closes, EMA (``alpha = 2/(n+1)``) or Wilder (``1/n``)."""

    __slots__ = ("alpha", "avg_gain", "avg_loss", "bars", "method", "period", "prev_close", "value")

    def __init__(self, period: int, method: RsiMethod = "ema") -> None:
        if period < 1:
            raise ValueError(f"RSI period must be >= 1, got {period}")
        if method not in ("ema", "wilder"):
            raise ValueError(f"RSI method must be 'ema' or 'wilder', got {method!r}")
        self.period = period
        self.method: RsiMethod = method
        self.alpha = 2.0 / (period + 1) if method == "ema" else 1.0 / period
        self.bars = 0
        self.prev_close: float | None = None
        self.avg_gain: float | None = None
        self.avg_loss: float | None = None
        self.value: float | None = None

    @property
    def ready(self) -> bool:
        """True once ``3 * period`` closes were seen."""
        return self.bars >= WARMUP_FACTOR * self.period

    @property
    def warmup_bars(self) -> int:
        """Closes needed before the value is trusted."""
        return WARMUP_FACTOR * self.period

    def update(self, close: float) -> float | None:
        """Feed one close; return the RSI (None on the very first close)."""
        if not _isfinite(close):
            return self.value
        self.bars += 1
        prev, self.prev_close = self.prev_close, close
        if prev is None:
            return self.value
        delta = close - prev
        gain = delta if delta > 0.0 else 0.0
        loss = -delta if delta < 0.0 else 0.0
        if self.avg_gain is None or self.avg_loss is None:
            self.avg_gain, self.avg_loss = gain, loss
        else:
            # Same operation order as pandas' adjust=False recursion (weights sum to 1).
            keep = 1.0 - self.alpha
            self.avg_gain = (keep * self.avg_gain + self.alpha * gain) / (keep + self.alpha)
            self.avg_loss = (keep * self.avg_loss + self.alpha * loss) / (keep + self.alpha)
        self.value = rsi_from_averages(self.avg_gain, self.avg_loss)
        return self.value

    def to_dict(self) -> dict[str, Any]:
        """Serialisable state."""
        return {
            "period": self.period,
            "method": self.method,
            "bars": self.bars,
            "prev_close": self.prev_close,
            "avg_gain": self.avg_gain,
            "avg_loss": self.avg_loss,
            "value": self.value,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Rebuild from ``to_dict`` output."""
        rsi = cls(int(data["period"]), data["method"])
        rsi.bars = int(data["bars"])
        rsi.prev_close = data["prev_close"]
        rsi.avg_gain = data["avg_gain"]
        rsi.avg_loss = data["avg_loss"]
        rsi.value = data["value"]
        return rsi


class RollingMean:
    """Mean of the last ``window`` values: a fixed-size ring buffer.

    The sum is ``math.fsum`` over the (fixed-size) window, so it is exact and never drifts;
    that is still O(1) per update in the length of the history. It is taken when the value
    is read, not on every update: a strategy watching the whole market reads a symbol's
    mean only on the rare bar that passes its cheap filters.
    """

    __slots__ = ("_mean", "buffer", "head", "window")

    def __init__(self, window: int) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.window = window
        self.buffer: list[float] = []
        self.head = 0  # index of the oldest value once the buffer is full
        self._mean: float | None = None  # the mean of ``buffer``, None: not taken yet

    @property
    def full(self) -> bool:
        """True once ``window`` values were seen (the mean exists)."""
        return len(self.buffer) == self.window

    @property
    def value(self) -> float | None:
        """The mean of the last ``window`` values, None until that many were seen."""
        if self._mean is None and len(self.buffer) == self.window:
            self._mean = math.fsum(self.buffer) / self.window
        return self._mean

    def update(self, x: float) -> float | None:
        """Add one value; return the mean once ``window`` values were seen, else None."""
        if _isfinite(x):
            self.push(x)
        return self.value

    def push(self, x: float) -> None:
        """Add a value the caller knows is finite (the per-bar fast path; no mean taken)."""
        buffer = self.buffer
        if len(buffer) < self.window:
            buffer.append(x)
        else:
            buffer[self.head] = x
            self.head = (self.head + 1) % self.window
        self._mean = None

    def to_dict(self) -> dict[str, Any]:
        """Serialisable state (buffer in arrival order, oldest first)."""
        ordered = self.buffer[self.head :] + self.buffer[: self.head]
        return {"window": self.window, "values": ordered}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Rebuild from ``to_dict`` output."""
        mean = cls(int(data["window"]))
        mean.extend(float(v) for v in data["values"])
        return mean

    def extend(self, values: Iterable[float]) -> None:
        """Feed several values in order."""
        for v in values:
            self.update(v)


class ATR:
    """Average true range: mean of the last ``period`` true ranges.

    ``TR = max(high - low, |high - prev_close|, |low - prev_close|)``; on the first bar ever
    seen (no previous close) ``TR = high - low``. Carries across sessions.
    """

    __slots__ = ("mean", "period", "prev_close")

    def __init__(self, period: int = 14) -> None:
        self.period = period
        self.prev_close: float | None = None
        self.mean = RollingMean(period)

    @property
    def value(self) -> float | None:
        """Current ATR, None until ``period`` bars were seen."""
        return self.mean.value

    def update(self, high: float, low: float, close: float) -> float | None:
        """Feed one bar; return the ATR (None until ``period`` bars)."""
        if not (_isfinite(high) and _isfinite(low) and _isfinite(close)):
            return self.mean.value
        tr = high - low
        if self.prev_close is not None:
            tr = max(tr, abs(high - self.prev_close), abs(low - self.prev_close))
        self.prev_close = close
        return self.mean.update(tr)

    def to_dict(self) -> dict[str, Any]:
        """Serialisable state."""
        return {"period": self.period, "prev_close": self.prev_close, "tr": self.mean.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Rebuild from ``to_dict`` output."""
        atr = cls(int(data["period"]))
        atr.prev_close = data["prev_close"]
        atr.mean = RollingMean.from_dict(data["tr"])
        return atr


class VolumeMean:
    """Mean of the last ``window`` volumes, the current bar included."""

    __slots__ = ("mean", "window")

    def __init__(self, window: int = 20) -> None:
        self.window = window
        self.mean = RollingMean(window)

    @property
    def value(self) -> float | None:
        """Current mean, None until ``window`` bars were seen."""
        return self.mean.value

    def update(self, volume: float) -> float | None:
        """Feed one bar's volume; return the mean (None until ``window`` bars)."""
        return self.mean.update(volume)

    def to_dict(self) -> dict[str, Any]:
        """Serialisable state."""
        return self.mean.to_dict()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Rebuild from ``to_dict`` output."""
        vm = cls(int(data["window"]))
        vm.mean = RollingMean.from_dict(data)
        return vm


class SessionTracker:
    """Regular-session open/high/low of one symbol; resets when the session date changes."""

    __slots__ = ("bars", "day", "high", "low", "open", "prior_high", "prior_low")

    def __init__(self) -> None:
        self.day: date | None = None
        self.open: float | None = None
        self.high: float | None = None
        self.low: float | None = None
        self.prior_high: float | None = None
        self.prior_low: float | None = None
        self.bars = 0

    def update(self, day: date, open_: float, high: float, low: float) -> None:
        """Feed one regular-session bar of session ``day``."""
        if not (_isfinite(open_) and _isfinite(high) and _isfinite(low)):
            return
        if day != self.day:
            self.day, self.open, self.high, self.low, self.bars = day, open_, None, None, 0
        self.prior_high, self.prior_low = self.high, self.low
        self.high = high if self.high is None else max(self.high, high)
        self.low = low if self.low is None else min(self.low, low)
        self.bars += 1

    def to_dict(self) -> dict[str, Any]:
        """Serialisable state (the date as ISO text)."""
        return {
            "day": None if self.day is None else self.day.isoformat(),
            "open": self.open,
            "high": self.high,
            "low": self.low,
            "prior_high": self.prior_high,
            "prior_low": self.prior_low,
            "bars": self.bars,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Rebuild from ``to_dict`` output."""
        tracker = cls()
        tracker.day = None if data["day"] is None else date.fromisoformat(data["day"])
        tracker.open = data["open"]
        tracker.high = data["high"]
        tracker.low = data["low"]
        tracker.prior_high = data["prior_high"]
        tracker.prior_low = data["prior_low"]
        tracker.bars = int(data["bars"])
        return tracker
