"""A split's effect on the strategies' positions in one account, as pure functions.

The broker multiplies the account's position by the ratio (``new_rate / old_rate``),
rounds it down and pays the fraction as cash in lieu. The strategies' attributed positions
must sum to the broker's new quantity, so each gets its own share count rounded down and
the shares the rounding leaves over go, one each, to the largest fractions (ties by
strategy name: deterministic). The cash in lieu is shared by the fraction each strategy
gave up (a strategy that got a share rounded up pays for its part of it), so the parts sum
to the broker's cash. A position's average price is divided by the ratio; the fraction it
gave up is a sale at the cash-in-lieu price, which realises P&L against that average.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import ROUND_FLOOR, Decimal

from magellan_daemon.ledger.accounting import PositionState

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True, kw_only=True)
class SplitShare:
    """One strategy's position before and after a split, and its cash in lieu."""

    before: PositionState
    after: PositionState
    cash: Decimal  # cash in lieu credited to this strategy (may be < 0: see the module)
    realized: Decimal  # P&L the fraction's sale realised


def whole_shares(qty: Decimal, ratio: Decimal) -> Decimal:
    """``qty * ratio`` rounded down to whole shares."""
    return (qty * ratio).to_integral_value(rounding=ROUND_FLOOR)


def split_positions(
    positions: Mapping[str, PositionState], ratio: Decimal, cash_in_lieu: Decimal | None
) -> dict[str, SplitShare]:
    """Each long position of one account's symbol after a split of ``ratio``.

    ``cash_in_lieu``: what the broker paid the account for the fraction (the CIL
    activity); None: computed at each position's post-split average price (no P&L)."""
    held = {s: p for s, p in sorted(positions.items()) if p.qty > 0}
    total = sum((p.qty for p in held.values()), ZERO)
    account_after = whole_shares(total, ratio)
    shares = {s: whole_shares(p.qty, ratio) for s, p in held.items()}
    left_over = int(account_after - sum(shares.values(), ZERO))
    by_fraction = sorted(held, key=lambda s: (-(held[s].qty * ratio - shares[s]), s))
    for strategy in by_fraction[: max(left_over, 0)]:
        shares[strategy] += 1
    account_fraction = total * ratio - account_after
    out: dict[str, SplitShare] = {}
    for strategy, before in held.items():
        avg = before.avg_price / ratio
        fraction = before.qty * ratio - shares[strategy]
        if cash_in_lieu is None or account_fraction == 0:
            cash = fraction * avg
        else:
            cash = cash_in_lieu * fraction / account_fraction
        realized = cash - fraction * avg
        after = split_state(before, ratio, shares[strategy], cash, realized)
        out[strategy] = SplitShare(before=before, after=after, cash=cash, realized=realized)
    return out


def split_state(
    state: PositionState, ratio: Decimal, qty_after: Decimal, cash: Decimal, realized: Decimal
) -> PositionState:
    """``state`` through a split of ``ratio`` that left it ``qty_after`` shares and paid
    ``cash`` (realising ``realized``) for the fraction given up."""
    fraction = state.qty * ratio - qty_after
    return replace(
        state,
        qty=qty_after,
        avg_price=state.avg_price / ratio,
        realized_open=state.realized_open + realized,
        closed_qty=state.closed_qty * ratio + fraction,
        closed_value=state.closed_value + cash,
        opened_qty=state.opened_qty * ratio,
    )
