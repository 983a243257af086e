"""Bear Trap's parameters and default universe (strategies.md section 3)."""

from __future__ import annotations

from pydantic import Field, model_validator

from strategies.api.model import ALL_SYMBOLS
from strategies.api.params import EmergencyStop, FrozenModel, RiskLimits

DEFAULT_UNIVERSE = (
    "ONDS",
    "ACB",
    "AMC",
    "WKHS",
    "MULN",
    "GOEV",
    "BTCS",
    "SENS",
    "DNUT",
    "CVNA",
    "PLUG",
    "KOSS",
    "TLRY",
    "DVLT",
    "NVAX",
    "NTLA",
    "MARA",
    "RIOT",
    "OCGN",
    "NKLA",
    "GME",
)


class BearTrapParams(FrozenModel):
    """Bear Trap parameters (defaults: strategies.md section 3)."""

    universe: tuple[str, ...] = Field(
        default=DEFAULT_UNIVERSE,
        min_length=1,
        description='Symbols watched; ["*"] watches every symbol whose bars arrive.',
    )
    exclude: tuple[str, ...] = Field(
        default=(), description='Symbols never watched (with universe ["*"]: ETFs, ...).'
    )
    min_price: float = Field(
        default=0.0, ge=0, description="Universe filter: no entry when the close is below."
    )
    max_price: float | None = Field(
        default=None, gt=0, description="Universe filter: no entry when the close is above."
    )
    min_avg_volume: float = Field(
        default=0.0, ge=0, description="Universe filter: no entry below this volume mean."
    )
    atr_period: int = Field(default=14, ge=1, description="ATR window, regular-session bars.")
    volume_window: int = Field(
        default=20, ge=1, description="Volume mean window (bars, current bar included)."
    )
    min_drop_pct: float = Field(
        default=0.15, gt=0, lt=1, description="Entry needs close/session_open - 1 <= -this."
    )
    min_wick_ratio: float = Field(default=0.15, ge=0, le=1, description="Lower wick / range.")
    min_body_ratio: float = Field(default=0.20, ge=0, le=1, description="Body / range.")
    volume_multiple: float = Field(
        default=1.20, ge=0, description="Entry bar volume >= this x the volume mean."
    )
    stop_atr_multiple: float = Field(
        default=0.45, ge=0, description="stop = support - this x ATR (support = bar's low)."
    )
    tp1_target_fraction: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="TP1 level = entry + this x (session_high_at_entry - entry).",
    )
    tp1_fraction: float = Field(
        default=0.40, ge=0, le=1, description="Share of the entry qty sold at TP1."
    )
    tp2_fraction: float = Field(
        default=0.30, ge=0, le=1, description="Share of the entry qty sold at TP2."
    )
    time_stop_minutes: int = Field(
        default=30, ge=1, description="Sell the rest this long after the entry fill."
    )
    eod_minutes_before_close: int = Field(
        default=5, ge=1, description="Sell the rest this long before the session close."
    )
    risk_fraction: float = Field(
        default=0.02, gt=0, le=1, description="Equity risked per trade (entry to stop)."
    )
    max_position_dollars: float = Field(
        default=50_000, gt=0, description="Dollar cap on one entry (sizing)."
    )
    max_spread_pct: float = Field(
        default=0.02, gt=0, description="Liquidity gate: max (ask-bid)/mid, as a fraction."
    )
    min_liquidity_shares: int = Field(
        default=50, ge=0, description="Liquidity gate: min shares at the bid and the ask."
    )
    risk: RiskLimits = Field(
        default=RiskLimits(
            max_open_positions=5,
            max_position_dollars=50_000,
            max_trades_per_day=10,
            max_daily_loss_dollars=10_000,
        ),
        description="Per-strategy gates applied by the router.",
    )
    emergency: EmergencyStop = Field(
        default_factory=EmergencyStop, description="Emergency-stop conditions (see [emergency])."
    )

    @model_validator(mode="after")
    def _check(self) -> BearTrapParams:
        if self.tp1_fraction + self.tp2_fraction > 1:
            raise ValueError(
                f"tp1_fraction + tp2_fraction = {self.tp1_fraction + self.tp2_fraction:g} exceeds 1"
            )
        if ALL_SYMBOLS in self.universe and len(self.universe) > 1:
            raise ValueError('universe "*" must be the only entry')
        return self
