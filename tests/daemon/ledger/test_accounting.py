"""Position accounting (pure): round trips, average cost under partial fills, shorts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from magellan_daemon.ledger.accounting import PositionState, apply_fill

T0 = datetime(2024, 11, 29, 15, 0, tzinfo=UTC)
prices = st.decimals(min_value="0.01", max_value="5000", places=2)
sizes = st.integers(min_value=1, max_value=10_000)


def _run(fills: list[tuple[str, int, Decimal]]) -> tuple[PositionState, list]:
    state, trips = PositionState(), []
    for i, (side, qty, price) in enumerate(fills):
        outcome = apply_fill(state, side, Decimal(qty), price, T0 + timedelta(minutes=i))
        state = outcome.position
        if outcome.closed:
            trips.append(outcome.closed)
    return state, trips


@given(qty=sizes, buy=prices, sell=prices)
def test_round_trip_pnl_is_the_price_difference_times_the_shares(qty, buy, sell) -> None:
    state, trips = _run([("buy", qty, buy), ("sell", qty, sell)])
    assert state == PositionState()
    assert [t.pnl for t in trips] == [(sell - buy) * qty]
    assert trips[0].entry_price == buy and trips[0].exit_price == sell


@given(parts=st.lists(st.tuples(sizes, prices), min_size=1, max_size=8))
def test_average_cost_under_partial_fills_is_the_volume_weighted_price(parts) -> None:
    state, _ = _run([("buy", q, p) for q, p in parts])
    total = sum(q for q, _ in parts)
    assert state.qty == total
    value = sum(q * p for q, p in parts)
    assert abs(state.avg_price * total - value) < Decimal("1e-12") * max(value, Decimal(1))


@given(buys=st.lists(sizes, min_size=1, max_size=5), cut=st.floats(0, 1), price=prices)
def test_selling_what_is_held_never_goes_negative(buys, cut, price) -> None:
    held = sum(buys)
    sell = max(1, int(held * cut))
    state, _ = _run([("buy", q, price) for q in buys] + [("sell", sell, price)])
    assert state.qty == held - sell >= 0
    assert state.qty > 0 or state == PositionState()


@given(qty=sizes, extra=sizes, buy=prices, sell=prices)
def test_a_sell_beyond_the_position_closes_the_trade_and_books_the_rest_short(
    qty, extra, buy, sell
) -> None:
    state, trips = _run([("buy", qty, buy), ("sell", qty + extra, sell)])
    assert state.qty == -extra and state.avg_price == sell
    assert [t.pnl for t in trips] == [(sell - buy) * qty]


def test_partial_exits_realise_against_the_average_cost() -> None:
    state, _ = _run(
        [("buy", 10, Decimal(100)), ("buy", 10, Decimal(110)), ("sell", 5, Decimal(120))]
    )
    assert state.qty == 15 and state.avg_price == 105 and state.realized_open == 75
    state2 = apply_fill(state, "sell", Decimal(15), Decimal(100), T0).position
    assert state2 == PositionState()


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError):
        apply_fill(PositionState(), "short", Decimal(1), Decimal(1), T0)
    with pytest.raises(ValueError):
        apply_fill(PositionState(), "buy", Decimal(0), Decimal(1), T0)
