"""Entry sizing: how many whole shares an entry intent's ``Sizing`` rule buys (pure)."""

from __future__ import annotations

import math

from strategies.api.model import FixedDollars, RiskBased, Sizing


def _finite(*values: object) -> bool:
    return all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values
    )


def _floor_shares(value: float) -> int:
    # An overflowing quotient (absurd inputs) is not a size: 0 rather than an exception.
    return max(0, math.floor(value)) if math.isfinite(value) else 0


def shares_for(sizing: Sizing, equity: float) -> int:
    """Whole shares ``sizing`` buys with ``equity``; 0 for invalid inputs. Never raises.

    ``FixedDollars``: ``floor(dollars / price)`` (equity is not used).
    ``RiskBased``: ``min(floor(risk_fraction * equity / (price - stop)),
    floor(max_dollars / price))``, 0 when ``price <= stop`` or any input is NaN, infinite
    or not positive (the stop itself may be any finite number).
    """
    if isinstance(sizing, FixedDollars):
        if not _finite(sizing.dollars, sizing.price) or sizing.dollars <= 0 or sizing.price <= 0:
            return 0
        return _floor_shares(sizing.dollars / sizing.price)
    if isinstance(sizing, RiskBased):
        inputs = (sizing.risk_fraction, sizing.price, sizing.stop, sizing.max_dollars, equity)
        if not _finite(*inputs):
            return 0
        if min(sizing.risk_fraction, sizing.price, sizing.max_dollars, equity) <= 0:
            return 0
        risk_per_share = sizing.price - sizing.stop
        if risk_per_share <= 0:
            return 0
        by_dollars = _floor_shares(sizing.max_dollars / sizing.price)
        risk_shares = sizing.risk_fraction * equity / risk_per_share
        if not math.isfinite(risk_shares):
            # A stop a hair below the price allows "infinite" shares: the dollar cap decides.
            return by_dollars
        return min(_floor_shares(risk_shares), by_dollars)
    return 0
