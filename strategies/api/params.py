"""Parameter models shared by the three strategies (pure: validation only, no I/O).

Every model is frozen and forbids unknown fields, so a typo in a config file is an error
naming the field rather than a silently ignored value. Each strategy module defines its own
``*Params`` model that embeds ``RiskLimits`` and ``EmergencyStop``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class FrozenModel(BaseModel):
    """Base for every config model: immutable, unknown fields rejected, and no NaN or
    infinity (``inf`` passes ``gt=0`` and then breaks every sizing)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class RiskLimits(FrozenModel):
    """Per-strategy gates the order router applies to entries (never to exits or cancels)."""

    max_open_positions: int = Field(ge=0, description="Open positions allowed at once.")
    max_position_dollars: float = Field(
        gt=0, description="Dollar cap on one position's entry value (qty * price)."
    )
    max_trades_per_day: int | None = Field(
        default=None, ge=0, description="Entries allowed per session; None = no limit."
    )
    max_daily_loss_dollars: float = Field(
        gt=0, description="Realised loss today at or beyond which entries stop for the day."
    )


class EmergencyStop(FrozenModel):
    """Conditions over a strategy's closed trades that halt it until an operator resumes it.

    The spec names the conditions but not their values; the defaults are Magellan's choice.
    """

    consecutive_losing_days: int = Field(
        default=5, ge=1, description="Halt after this many losing days in a row."
    )
    win_rate_below: float = Field(
        default=0.30, ge=0, le=1, description="Halt when the win rate over the window is below."
    )
    rolling_window_days: int = Field(
        default=20, ge=1, description="Trading days the win rate is measured over."
    )
    min_trades_for_win_rate: int = Field(
        default=10, ge=1, description="The win-rate rule needs at least this many closed trades."
    )
    drawdown_threshold_pct: float = Field(
        default=10.0, gt=0, le=100, description="Halt when realised P&L falls this % of capital."
    )
    capital_dollars: float = Field(
        default=100_000, gt=0, description="Capital the drawdown percentage is measured on."
    )


class HysteresisBands(FrozenModel):
    """RSI period and the Schmitt-trigger bands for one symbol."""

    rsi_period: int = Field(ge=2, le=500, description="RSI period in bars (3x warm-up).")
    upper: float = Field(gt=0, lt=100, description="Flat and RSI above this: enter long.")
    lower: float = Field(gt=0, lt=100, description="Long and RSI below this: exit all.")

    @model_validator(mode="after")
    def _upper_above_lower(self) -> HysteresisBands:
        if self.upper <= self.lower:
            raise ValueError(f"upper band {self.upper} must be above lower band {self.lower}")
        return self
