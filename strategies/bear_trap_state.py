"""Bear Trap's per-symbol state and the checks on a bar before it reaches it (pure)."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from strategies.bear_trap_plan import TradePlan
from strategies.indicators import ATR, SessionTracker, VolumeMean
from strategies.model import Bar
from strategies.session import Session

BAR_LENGTH = timedelta(minutes=1)


class SymbolState:
    """One symbol's indicators and, while a trade is on, its plan."""

    __slots__ = ("atr", "plan", "session", "volume")

    def __init__(self, atr_period: int, volume_window: int) -> None:
        self.session = SessionTracker()
        self.atr = ATR(atr_period)
        self.volume = VolumeMean(volume_window)
        self.plan: TradePlan | None = None

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
    values = (bar.open, bar.high, bar.low, bar.close, bar.volume)
    if not all(math.isfinite(v) for v in values):
        return False
    return (
        0 < bar.low <= min(bar.open, bar.close)
        and max(bar.open, bar.close) <= bar.high
        and (bar.volume >= 0)
    )


def in_regular_session(bar: Bar, session: Session | None) -> bool:
    """True when the 1Min bar ``[t, t+1min)`` lies inside the session's regular hours."""
    return session is not None and session.open <= bar.t and bar.t + BAR_LENGTH <= session.close
