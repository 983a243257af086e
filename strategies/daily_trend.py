"""Daily Trend Hysteresis (strategies.md §1): RSI Schmitt trigger on daily bars.

The daemon calls ``on_bar`` with each session's completed daily bar at the 16:05 ET signal
job (close + 5 minutes on early closes). Entries and exits execute at the next session's open
(``execute="next_open"``; the daemon adds ``execution_delay_seconds``). A daily bar counts
when ``session`` is the NYSE session of the bar's New York date; any other bar is skipped.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from strategies.api.model import Bar, Execute
from strategies.api.params import EmergencyStop, FrozenModel, HysteresisBands, RiskLimits
from strategies.api.session import Session
from strategies.lib.hysteresis import HysteresisStrategy, new_york_date
from strategies.lib.indicators import RsiMethod


class DailySymbolParams(HysteresisBands):
    """One Daily Trend symbol: RSI period, bands and the dollars one entry buys."""

    allocation: float = Field(gt=0, description="Dollars per entry: qty = floor(alloc / close).")


class DailyTrendParams(FrozenModel):
    """Everything Daily Trend needs (configs/daily_trend.toml)."""

    symbols: dict[str, DailySymbolParams] = Field(
        min_length=1, description="Universe: per-symbol RSI period, bands and allocation."
    )
    rsi_method: Literal["ema", "wilder"] = Field(
        default="ema", description="RSI smoothing: ema alpha=2/(n+1) (tuned), wilder 1/n."
    )
    execution_delay_seconds: int = Field(
        default=60, ge=0, le=3600, description="Orders go out at the next open + this."
    )
    risk: RiskLimits = Field(description="Entry gates (see [risk]).")
    emergency: EmergencyStop = Field(
        default_factory=EmergencyStop, description="Emergency-stop conditions (see [emergency])."
    )


class DailyTrend(HysteresisStrategy):
    """Daily RSI hysteresis over a fixed universe; long only."""

    name: ClassVar[str] = "daily_trend"
    timeframe: ClassVar[str] = "1Day"

    def __init__(self, params: DailyTrendParams, state: dict[str, Any] | None = None) -> None:
        self.params = params
        method: RsiMethod = params.rsi_method
        super().__init__(dict(params.symbols), method, state)

    def _bar_in_session(self, bar: Bar, session: Session | None) -> bool:
        return session is not None and session.date == new_york_date(bar.t)

    def _entry_dollars(self, symbol: str) -> float:
        return self.params.symbols[symbol].allocation

    def _execute(self, bar: Bar, session: Session) -> Execute:
        return "next_open"
