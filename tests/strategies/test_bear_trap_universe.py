"""Bear Trap's universe filters from the config: each one alone keeps the reference trap
from entering (and says so), none of them touches an open trade's exits."""

from __future__ import annotations

from typing import Any

import pytest

from strategies.bear_trap.strategy import BearTrap, BearTrapParams
from tests.strategies.test_bear_trap import SESSION, bar, feed, setup, trap, update

# The reference trap closes at 8.20 with a volume mean of 1200 (tests/strategies/test_bear_trap).


@pytest.mark.parametrize(
    ("limits", "reason"),
    [
        ({"min_price": 8.5}, "universe filter: price 8.2 outside [8.5, None]"),
        ({"max_price": 8.0}, "universe filter: price 8.2 outside [0, 8.0]"),
        ({"min_avg_volume": 1500.0}, "universe filter: volume mean 1200 < 1500"),
        ({"exclude": ("AMC",)}, "symbol not in the universe"),
    ],
)
def test_each_universe_filter_alone_keeps_the_trap_out(limits: dict[str, Any], reason: str) -> None:
    bt = BearTrap(BearTrapParams(universe=("*",), **limits))
    feed(bt, setup())
    step = bt.on_bar(trap(), session=SESSION)
    assert step.intents == ()
    assert [e.reason for e in step.evaluations] == [reason]


def test_the_filters_at_their_limits_let_the_trap_in() -> None:
    params = BearTrapParams(
        universe=("*",), min_price=8.2, max_price=8.2, min_avg_volume=1200.0, exclude=("GME",)
    )
    bt = BearTrap(params)
    feed(bt, setup())
    assert bt.on_bar(trap(), session=SESSION).intents


def test_an_open_trade_is_managed_whatever_the_price_filter_says() -> None:
    bt = BearTrap(BearTrapParams(universe=("*",), max_price=9.0))
    feed(bt, setup())
    [entry] = bt.on_bar(trap(), session=SESSION).intents
    update(bt, "entry", entry.signal_time, "buy", 100, SESSION.open, price=8.20)
    # a bar above max_price that reaches TP1 still takes profit
    step = bt.on_bar(bar(SESSION, 22, 9.0, 9.2, 8.9, 9.15), session=SESSION)
    assert [i.leg for i in step.intents if i.action == "sell"] == ["tp1"]
