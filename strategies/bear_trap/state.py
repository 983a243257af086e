"""Bear Trap's per-symbol state and the checks on a bar before it reaches it (pure)."""

from __future__ import annotations

from datetime import date
from typing import Any

from magellan_core.timeframes import BAR_LENGTH as BAR_LENGTHS
from magellan_core.timeframes import MINUTE
from strategies.api.model import Bar
from strategies.api.session import Session
from strategies.bear_trap.plan import TradePlan
from strategies.lib.indicators import ATR, SessionTracker, VolumeMean

BAR_LENGTH = BAR_LENGTHS[MINUTE]  # Bear Trap reads minute bars
_INF = float("inf")


class SymbolState:
    """One symbol's indicators and, while a trade is on, its plan."""

    __slots__ = ("atr", "plan", "session", "volume")

    def __init__(self, atr_period: int, volume_window: int) -> None:
        self.session = SessionTracker()
        self.atr = ATR(atr_period)
        self.volume = VolumeMean(volume_window)
        self.plan: TradePlan | None = None

    def update(self, bar: Bar, day: date) -> None:
        """Feed one valid regular-session bar of session ``day`` to the session tracker,
        the ATR and the volume mean: the same arithmetic as their ``update`` methods, fused
        into one call without their finiteness checks (``valid_bar`` passed already), since
        this runs for every bar of every symbol."""
        high, low, close = bar.high, bar.low, bar.close
        tracker = self.session
        if day != tracker.day:
            tracker.day, tracker.open, tracker.high, tracker.low = day, bar.open, None, None
            tracker.bars = 0
        prior_high, prior_low = tracker.high, tracker.low
        tracker.prior_high, tracker.prior_low = prior_high, prior_low
        tracker.high = high if prior_high is None else max(prior_high, high)
        tracker.low = low if prior_low is None else min(prior_low, low)
        tracker.bars += 1
        atr = self.atr
        prev = atr.prev_close
        true_range = high - low
        if prev is not None:
            true_range = max(true_range, abs(high - prev), abs(low - prev))
        atr.prev_close = close
        atr.mean.push(true_range)
        self.volume.mean.push(bar.volume)

    def to_dict(self) -> dict[str, Any]:
        """Serialisable state."""
        return {
            "session": self.session.to_dict(),
            "atr": self.atr.to_dict(),
            "volume": self.volume.to_dict(),
            "plan": None if self.plan is None else self.plan.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SymbolState:
        """Rebuild from ``to_dict`` output."""
        st = cls.__new__(cls)
        st.session = SessionTracker.from_dict(data["session"])
        st.atr = ATR.from_dict(data["atr"])
        st.volume = VolumeMean.from_dict(data["volume"])
        st.plan = None if data["plan"] is None else TradePlan.from_dict(data["plan"])
        return st


def valid_bar(bar: Bar) -> bool:
    """Finite prices with ``0 < low <= min(open, close)``, ``max(open, close) <= high``, and
    a finite volume >= 0. Written as chained comparisons: a NaN fails every one, and with
    ``low > 0`` and ``high < inf`` every price between them is finite."""
    low, high = bar.low, bar.high
    volume = bar.volume
    return 0 < low <= bar.open <= high < _INF and low <= bar.close <= high and 0 <= volume < _INF


def in_regular_session(bar: Bar, session: Session | None) -> bool:
    """True when the 1Min bar ``[t, t+1min)`` lies inside the session's regular hours."""
    return session is not None and session.open <= bar.t and bar.t + BAR_LENGTH <= session.close
