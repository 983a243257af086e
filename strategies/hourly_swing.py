"""Hourly Swing (strategies.md §2): RSI Schmitt trigger on regular-session hourly bars.

Bar alignment: Alpaca's clock-hour bars (a bar stamped ``t`` covers ``[t, t + 1h)``). Only
bars lying entirely inside the regular session count: ``t >= open`` and ``t + 1h <= close``,
i.e. the bars starting 10:00..15:00 ET on a normal day and 10:00..12:00 ET on a 13:00 close.
The 09:00 bar (half pre-market) and every extended-hours bar are skipped and never reach the
RSI. Each bar is evaluated at its completion; orders go out at once (``execute="now"``)
except on the bar that ends at the close, whose orders execute at the next open.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from magellan_core.timeframes import BAR_LENGTH
from strategies.api.model import Bar, Execute
from strategies.api.params import EmergencyStop, FrozenModel, HysteresisBands, RiskLimits
from strategies.api.session import Session
from strategies.lib.hysteresis import HysteresisStrategy
from strategies.lib.indicators import RsiMethod


class HourlySwingParams(FrozenModel):
    """Everything Hourly Swing needs (configs/hourly_swing.toml). Each entry buys
    ``risk.max_position_dollars`` worth (equal allocation)."""

    symbols: dict[str, HysteresisBands] = Field(
        min_length=1, description="Universe: per-symbol RSI period and bands."
    )
    rsi_method: Literal["ema", "wilder"] = Field(
        default="ema", description="RSI smoothing: ema alpha=2/(n+1) (tuned), wilder 1/n."
    )
    timeframe: Literal["1Hour", "1Min"] = Field(
        default="1Hour",
        description="Bars the rule runs on: 1Hour in the daemon; `magellan backtest` also 1Min.",
    )
    entry_shares: int | None = Field(
        default=None, ge=1, description="Each entry buys this many shares (default: dollars)."
    )
    risk: RiskLimits = Field(description="Entry gates (see [risk]).")
    emergency: EmergencyStop = Field(
        default_factory=EmergencyStop, description="Emergency-stop conditions (see [emergency])."
    )


class HourlySwing(HysteresisStrategy):
    """Hourly RSI hysteresis; overnight holds allowed; long only."""

    name: ClassVar[str] = "hourly_swing"

    def __init__(self, params: HourlySwingParams, state: dict[str, Any] | None = None) -> None:
        self.params = params
        self.timeframe = params.timeframe  # type: ignore[misc]
        self._bar_length = BAR_LENGTH[params.timeframe]
        method: RsiMethod = params.rsi_method
        super().__init__(dict(params.symbols), method, state)

    def _bar_in_session(self, bar: Bar, session: Session | None) -> bool:
        return session is not None and session.contains_bar(bar.t, bar.t + self._bar_length)

    def _entry_dollars(self, symbol: str) -> float:
        return self.params.risk.max_position_dollars

    def _entry_shares(self, symbol: str) -> int | None:
        return self.params.entry_shares

    def _execute(self, bar: Bar, session: Session) -> Execute:
        return "next_open" if bar.t + self._bar_length >= session.close else "now"
