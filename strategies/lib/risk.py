"""Per-strategy risk gates the order router applies to ENTRY intents (pure functions).

Exits and stop cancels never pass through these: a halt or a limit blocks new positions,
never the way out of one. Each gate returns a ``GateResult``; ``qty`` is what may be sent
(possibly reduced), ``reason`` says why it was blocked or reduced ("" when untouched).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from strategies.api.params import RiskLimits


@dataclass(frozen=True, slots=True, kw_only=True)
class StrategyBook:
    """The daemon's snapshot of one strategy's book at the moment an entry is gated."""

    open_positions: Mapping[str, int] = field(default_factory=dict)  # symbol -> shares held
    entries_today: int = 0  # entry orders sent this session
    realised_pnl_today: float = 0.0  # dollars, negative for a loss


@dataclass(frozen=True, slots=True, kw_only=True)
class GateResult:
    """A gate's verdict: may the entry go out, with how many shares, and why not."""

    allowed: bool
    qty: int
    reason: str = ""


def _blocked(reason: str) -> GateResult:
    return GateResult(allowed=False, qty=0, reason=reason)


def _valid_order(qty: int, price: float) -> str:
    if qty <= 0:
        return "size 0"
    if not (math.isfinite(price) and price > 0):
        return f"invalid price {price}"
    return ""


def check_entry(
    limits: RiskLimits,
    book: StrategyBook,
    symbol: str,
    qty: int,
    price: float,
    halted: str | None,
) -> GateResult:
    """Apply the strategy's gates to an entry of ``qty`` shares of ``symbol`` at ``price``.

    Order: halted, invalid size/price, symbol already held, max open positions, max trades
    per day, daily loss limit, then the dollar cap (which reduces ``qty`` rather than
    blocking, unless the reduced size is 0). Returns the first blocking verdict.
    """
    if halted:
        return _blocked(f"halted: {halted}")
    invalid = _valid_order(qty, price)
    if invalid:
        return _blocked(invalid)
    if book.open_positions.get(symbol, 0) > 0:
        return _blocked(f"{symbol} already held")
    held = sum(1 for shares in book.open_positions.values() if shares > 0)
    if held >= limits.max_open_positions:
        return _blocked(f"max open positions {held} >= {limits.max_open_positions}")
    if limits.max_trades_per_day is not None and book.entries_today >= limits.max_trades_per_day:
        return _blocked(f"max trades per day {book.entries_today} >= {limits.max_trades_per_day}")
    loss = -book.realised_pnl_today
    if loss >= limits.max_daily_loss_dollars:
        return _blocked(f"daily loss {loss:.2f} >= {limits.max_daily_loss_dollars:.2f}")
    if qty * price > limits.max_position_dollars:
        capped = math.floor(limits.max_position_dollars / price)
        if capped <= 0:
            return _blocked("size 0")
        return GateResult(
            allowed=True,
            qty=capped,
            reason=f"qty {qty} reduced to {capped}: cap ${limits.max_position_dollars:,.0f}",
        )
    return GateResult(allowed=True, qty=qty)


def check_buying_power(qty: int, price: float, buying_power: float) -> GateResult:
    """Reduce ``qty`` to what ``buying_power`` pays for at ``price``; blocked when that is 0."""
    invalid = _valid_order(qty, price)
    if invalid:
        return _blocked(invalid)
    if not math.isfinite(buying_power) or buying_power <= 0:
        return _blocked(f"no buying power ({buying_power})")
    if qty * price <= buying_power:
        return GateResult(allowed=True, qty=qty)
    affordable = math.floor(buying_power / price)
    if affordable <= 0:
        return _blocked(f"buying power {buying_power:.2f} < price {price:.2f}")
    return GateResult(
        allowed=True,
        qty=affordable,
        reason=f"qty {qty} reduced to {affordable}: buying power {buying_power:.2f}",
    )


def check_liquidity(
    bid: float,
    ask: float,
    bid_size: float,
    ask_size: float,
    max_spread_pct: float,
    min_liquidity_shares: float,
) -> GateResult:
    """Block an entry when the quote is crossed/empty, the spread (over the mid) exceeds
    ``max_spread_pct`` (a fraction: 0.02 = 2%), or either side shows fewer than
    ``min_liquidity_shares`` shares. ``qty`` in the result is 0: this gate only allows or
    blocks. The caller skips it when there is no quote."""
    if not (math.isfinite(bid) and math.isfinite(ask)) or bid <= 0 or ask <= 0:
        return _blocked(f"no usable quote (bid {bid}, ask {ask})")
    if ask < bid:
        return _blocked(f"crossed quote (bid {bid}, ask {ask})")
    mid = (bid + ask) / 2
    spread = (ask - bid) / mid
    if spread > max_spread_pct:
        return _blocked(f"spread {spread:.4f} > {max_spread_pct:.4f}")
    # The entry takes the ask, and the exits will hit the bid: both sides must be there.
    for side, size in (("ask", ask_size), ("bid", bid_size)):
        if not math.isfinite(size) or size < min_liquidity_shares:
            return _blocked(f"{side} size {size:g} < {min_liquidity_shares:g} shares")
    return GateResult(allowed=True, qty=0)
