"""Entry sizing: FixedDollars and RiskBased, including every invalid input (never raises)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from strategies.api.model import FixedDollars, RiskBased
from strategies.lib.sizing import shares_for

NAN, INF = math.nan, math.inf


@pytest.mark.parametrize(
    ("dollars", "price", "expected"),
    [
        (10_000, 100.0, 100),
        (10_000, 101.0, 99),
        (10_000, 10_001.0, 0),
        (10_000, 0.37, 27_027),
        (0, 10.0, 0),
        (-5, 10.0, 0),
        (10_000, 0.0, 0),
        (10_000, -1.0, 0),
        (NAN, 10.0, 0),
        (10_000, NAN, 0),
        (INF, 10.0, 0),
    ],
)
def test_fixed_dollars(dollars: float, price: float, expected: int) -> None:
    assert shares_for(FixedDollars(dollars=dollars, price=price), equity=123.0) == expected


@pytest.mark.parametrize(
    ("risk_fraction", "price", "stop", "max_dollars", "equity", "expected"),
    [
        # 0.02 * 100k = 2000 risked / 0.5 per share = 4000 shares; cap 50k / 10 = 5000
        (0.02, 10.0, 9.5, 50_000, 100_000, 4000),
        # the dollar cap binds: 2000 / 0.1 = 20000 shares, cap 50k / 10 = 5000
        (0.02, 10.0, 9.9, 50_000, 100_000, 5000),
        # floors: 2000 / 0.3 = 6666.67
        (0.02, 5.0, 4.7, 50_000, 100_000, 6666),
        # a stop below zero is still a valid (wide) stop: 2000 / 1.5 = 1333
        (0.02, 1.0, -0.5, 50_000, 100_000, 1333),
        (0.02, 10.0, 10.0, 50_000, 100_000, 0),  # price == stop
        (0.02, 10.0, 10.5, 50_000, 100_000, 0),  # price < stop
        (0.02, 10.0, 9.5, 50_000, 0, 0),  # no equity
        (0.02, 10.0, 9.5, 50_000, -1, 0),
        (0.0, 10.0, 9.5, 50_000, 100_000, 0),
        (0.02, 0.0, -1.0, 50_000, 100_000, 0),
        (0.02, 10.0, 9.5, 0, 100_000, 0),
        (NAN, 10.0, 9.5, 50_000, 100_000, 0),
        (0.02, NAN, 9.5, 50_000, 100_000, 0),
        (0.02, 10.0, NAN, 50_000, 100_000, 0),
        (0.02, 10.0, 9.5, NAN, 100_000, 0),
        (0.02, 10.0, 9.5, 50_000, NAN, 0),
        (0.02, 10.0, -INF, 50_000, 100_000, 0),
        (0.02, 10.0, 9.5, 50_000, INF, 0),
        # a stop a hair below the price: the risk quotient overflows, the cap decides
        (1.0, 2.0, 2.0 - 2**-51, 50_000, 1e300, 25_000),
        # an absurd dollar cap that overflows too: no size rather than an exception
        (1.0, 1e-300, 0.0, 1e308, 1e300, 0),
    ],
)
def test_risk_based(
    risk_fraction: float,
    price: float,
    stop: float,
    max_dollars: float,
    equity: float,
    expected: int,
) -> None:
    sizing = RiskBased(risk_fraction=risk_fraction, price=price, stop=stop, max_dollars=max_dollars)
    assert shares_for(sizing, equity) == expected


_any_float = st.floats(allow_nan=True, allow_infinity=True)


@given(_any_float, _any_float, _any_float, _any_float, _any_float)
def test_risk_based_never_raises_and_respects_the_caps(
    risk_fraction: float, price: float, stop: float, max_dollars: float, equity: float
) -> None:
    sizing = RiskBased(risk_fraction=risk_fraction, price=price, stop=stop, max_dollars=max_dollars)
    shares = shares_for(sizing, equity)
    assert isinstance(shares, int)
    assert shares >= 0
    if shares > 0:
        assert shares * price <= max_dollars * (1 + 1e-12)
        assert shares * (price - stop) <= risk_fraction * equity * (1 + 1e-12)


@given(_any_float, _any_float)
def test_fixed_dollars_never_raises(dollars: float, price: float) -> None:
    shares = shares_for(FixedDollars(dollars=dollars, price=price), 0.0)
    assert shares >= 0
    if shares > 0:
        assert shares * price <= dollars * (1 + 1e-12)
