"""The bar-matching rule of ``magellan_core.matching``, by table: the simulator's exchange
and the signals replay both fill by it."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from magellan_core.matching import limit_price, slippage_factor, stop_limit_price, stop_start
from magellan_core.timeframes import BAR_LENGTH, DAY, HOUR, MINUTE, parse_timeframe


@dataclass(frozen=True)
class Prices:
    open: float
    high: float
    low: float


BAR = Prices(open=10.0, high=10.5, low=9.5)


@pytest.mark.parametrize(
    ("buy", "stop", "bar", "expected"),
    [
        (False, 9.8, BAR, 9.8),  # reached inside the bar: at the stop
        (False, 10.2, BAR, 10.0),  # opened below a sell stop (a gap): at the open
        (False, 9.4, BAR, None),  # the low stays above it
        (False, 9.5, BAR, 9.5),  # touched exactly at the low
        (True, 10.2, BAR, 10.2),
        (True, 9.8, BAR, 10.0),  # opened above a buy stop: at the open
        (True, 10.6, BAR, None),
    ],
)
def test_stop_start(buy: bool, stop: float, bar: Prices, expected: float | None) -> None:
    assert stop_start(buy, stop, bar) == expected


@pytest.mark.parametrize(
    ("buy", "limit", "at_open_only", "expected"),
    [
        (True, 10.2, False, 10.0),  # the open is within the limit
        (True, 9.8, False, 9.8),  # traded down through it
        (True, 9.4, False, None),
        (True, 9.8, True, None),  # OPG: the open or nothing
        (False, 9.8, False, 10.0),
        (False, 10.2, False, 10.2),
        (False, 10.6, False, None),
    ],
)
def test_limit_price(buy: bool, limit: float, at_open_only: bool, expected: float | None) -> None:
    assert limit_price(buy, BAR, limit, at_open_only=at_open_only) == expected


def test_stop_limit_fills_in_the_triggering_bar_only_within_its_limit() -> None:
    assert stop_limit_price(False, 9.8, 9.7) == 9.8
    assert stop_limit_price(False, 9.8, 9.9) is None
    assert stop_limit_price(True, 10.2, 10.3) == 10.2


def test_slippage_is_against_the_taker_and_none_is_exact() -> None:
    assert slippage_factor(True, 0.0) == slippage_factor(False, 0.0) == 1.0
    assert slippage_factor(True, 10.0) == 1.001
    assert slippage_factor(False, 10.0) == 0.999


def test_one_timeframe_table() -> None:
    assert [parse_timeframe(t) for t in ("1T", "1H", "1D", "1Min", "5Min")] == [
        MINUTE,
        HOUR,
        DAY,
        MINUTE,
        None,
    ]
    assert BAR_LENGTH[MINUTE] * 60 == BAR_LENGTH[HOUR]
