"""Position accounting as a pure function: one execution in, the position after it out.

A strategy's position in one symbol is netted: buys and sells move one signed quantity.
Average cost changes only when the position grows; a reduction realises P&L against it; a
position that goes through zero closes a trade (its round-trip record) and, if the execution
was larger than the position, opens the other side at the execution price. Our strategies
are long only, so a negative quantity is always a defect somewhere (a stop that filled while
a market sell was also out, a manual trade): the ledger stores it as it is and reports it,
it never books it as zero.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True, kw_only=True)
class PositionState:
    """One strategy's position in one symbol and the running totals of its current trade.

    ``closed_qty`` / ``closed_value``: shares taken off (and their proceeds) since the trade
    opened, for the round-trip record; ``realized_open``: P&L realised since it opened.
    """

    qty: Decimal = ZERO
    avg_price: Decimal = ZERO
    opened_at: datetime | None = None
    realized_open: Decimal = ZERO
    closed_qty: Decimal = ZERO
    closed_value: Decimal = ZERO
    opened_qty: Decimal = ZERO


@dataclass(frozen=True, slots=True, kw_only=True)
class RoundTrip:
    """A trade from flat to flat."""

    qty: Decimal
    entry_price: Decimal
    exit_price: Decimal
    pnl: Decimal
    entry_time: datetime
    exit_time: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class FillOutcome:
    """The position after one execution, the P&L it realised, the trade it closed."""

    position: PositionState
    realized: Decimal
    closed: RoundTrip | None


def apply_fill(
    position: PositionState, side: str, qty: Decimal, price: Decimal, time: datetime
) -> FillOutcome:
    """Apply one execution of ``qty`` shares at ``price`` (``side`` "buy" or "sell").

    Raises ``ValueError`` for a side that is neither, a zero quantity or a negative price.
    """
    if side not in ("buy", "sell"):
        raise ValueError(f"side must be buy or sell, not {side!r}")
    if qty == 0 or price < 0:
        raise ValueError(f"cannot apply {qty} shares at {price}")
    signed = qty if side == "buy" else -qty
    held = position.qty
    if held == 0 or (held > 0) == (signed > 0):
        grown = _grow(position, signed, price, time)
        return FillOutcome(position=grown, realized=ZERO, closed=None)
    closing = min(abs(signed), abs(held))
    direction = 1 if held > 0 else -1
    realized = (price - position.avg_price) * closing * direction
    after = held + signed
    state = replace(
        position,
        qty=after,
        realized_open=position.realized_open + realized,
        closed_qty=position.closed_qty + closing,
        closed_value=position.closed_value + closing * price,
    )
    if after * direction > 0:
        return FillOutcome(position=state, realized=realized, closed=None)
    trip = RoundTrip(
        qty=state.closed_qty,
        entry_price=position.avg_price,
        exit_price=state.closed_value / state.closed_qty,
        pnl=state.realized_open,
        entry_time=position.opened_at or time,
        exit_time=time,
    )
    flipped = PositionState()
    if after != 0:  # went through zero: the rest opens the other side at this price
        flipped = _grow(PositionState(), after, price, time)
    return FillOutcome(position=flipped, realized=realized, closed=trip)


def _grow(
    position: PositionState, signed: Decimal, price: Decimal, time: datetime
) -> PositionState:
    size = abs(position.qty) + abs(signed)
    avg = (position.avg_price * abs(position.qty) + price * abs(signed)) / size
    return replace(
        position,
        qty=position.qty + signed,
        avg_price=avg,
        opened_at=position.opened_at or time,
        opened_qty=position.opened_qty + abs(signed),
    )
