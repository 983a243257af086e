"""Wash-trade protection: the pure rule as a table, then the exchange applying it."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from desk import KEY, Desk, at

from magellan_sim.errors import SimError
from magellan_sim.exchange.washtrade import Shape, conflicting, could_trade
from magellan_sim.market.market import MarketData


def limit(side: str, price: str) -> Shape:
    return Shape(side=side, type="limit", limit_price=Decimal(price))


def plain(side: str, kind: str) -> Shape:
    return Shape(side=side, type=kind)


@pytest.mark.parametrize(
    ("new", "resting", "refused"),
    [
        # the rows Alpaca documents
        (limit("buy", "10"), plain("sell", "stop"), True),
        (plain("sell", "stop"), limit("buy", "10"), True),
        (plain("buy", "market"), limit("sell", "12"), True),
        (limit("buy", "12"), limit("sell", "12"), True),  # crossing: buy >= sell
        (limit("buy", "12.5"), limit("sell", "12"), True),
        (limit("sell", "9"), limit("buy", "10"), True),
        # the stricter reading for the rest
        (plain("buy", "market"), plain("sell", "stop"), True),
        (plain("sell", "market"), plain("buy", "market"), True),
        (plain("buy", "stop"), limit("sell", "20"), True),
        (plain("sell", "stop_limit"), limit("buy", "5"), True),
        (limit("sell", "20"), plain("buy", "stop_limit"), True),
        (limit("buy", "5"), plain("sell", "market"), True),
        # limits that do not cross may rest together
        (limit("buy", "11.99"), limit("sell", "12"), False),
        (limit("sell", "10.01"), limit("buy", "10"), False),
        # the same side never trades with itself
        (plain("sell", "market"), plain("sell", "stop"), False),
        (limit("buy", "10"), plain("buy", "stop"), False),
    ],
)
def test_rule_table(new: Shape, resting: Shape, refused: bool) -> None:
    assert could_trade(new, resting) is refused


def test_conflicting_names_the_first_order_that_could_trade() -> None:
    resting = [
        ("a", limit("sell", "12")),
        ("b", plain("sell", "stop")),
        ("c", plain("buy", "stop")),
    ]
    assert conflicting(limit("buy", "11"), resting) == "b"
    assert conflicting(limit("buy", "11"), resting[:1]) is None
    assert conflicting(plain("buy", "market"), []) is None


@pytest.fixture(scope="module")
def real_market(bars_dir: Path) -> MarketData:
    return MarketData.from_dir(bars_dir)


def test_exchange_refuses_an_order_that_could_trade_with_its_own(
    real_market: MarketData,
) -> None:
    desk = Desk.start(real_market, at(15, 0))
    desk.order(qty="100")
    desk.to(at(15, 2))
    stop = desk.order(side="sell", type="stop", stop_price=Decimal("3"), time_in_force="gtc")
    with pytest.raises(SimError) as refused:
        desk.order(type="limit", limit_price=Decimal("4"), qty="10")
    assert (refused.value.status, refused.value.code) == (403, 40310000)
    assert refused.value.message == "potential wash trade detected. use complex orders"
    assert refused.value.extra["existing_order_id"] == stop["id"]
    assert desk.order(symbol="GME", qty="1")["status"] == "new"  # other symbols are free
    # A replace is checked against the other orders, never against the one it replaces.
    limit_sell = desk.exchange.orders.replace_order(
        KEY,
        stop["id"],
        qty=None,
        limit_price=None,
        stop_price=Decimal("3.5"),
        time_in_force=None,
        client_order_id=None,
    )
    assert limit_sell["replaces"] == stop["id"]


def test_switched_off_the_orders_rest_together(real_market: MarketData) -> None:
    desk = Desk.start(real_market, at(15, 0), wash_trade_check=False)
    desk.order(qty="100")
    desk.to(at(15, 2))
    desk.order(side="sell", type="stop", stop_price=Decimal("3"), time_in_force="gtc")
    assert desk.order(type="limit", limit_price=Decimal("4"), qty="10")["status"] == "new"
