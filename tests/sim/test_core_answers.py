"""The broker's answers a test can choose for the next order, cancel or replace
(``sim.faults``): each as Alpaca gives it, in the exchange core, so the in-process broker and
the HTTP server both answer so."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from desk import KEY, at
from test_core_pending import holding, refused, replace, stop

from magellan_sim.market.market import MarketData


@pytest.fixture(scope="module")
def real_market(bars_dir: Path) -> MarketData:
    return MarketData.from_dir(bars_dir)


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("refuse_next_orders", "insufficient buying power"),
        ("wash_trade_next_orders", "potential wash trade detected. use complex orders"),
        ("insufficient_qty_next_orders", "insufficient qty available for order"),
    ],
)
def test_refused_at_once_creates_nothing(real_market: MarketData, fault: str, message: str) -> None:
    desk = holding(real_market)
    desk.exchange.faults.update(**{fault: 1})
    error = refused(stop, desk, "3", qty="100")
    assert (error.status, error.code) == (403, 40310000)
    assert error.message.startswith(message)
    assert desk.exchange.orders.list_orders(KEY, status="open") == []
    assert stop(desk, "3")["status"] == "new"  # one request only


def test_insufficient_qty_is_for_sells_only(real_market: MarketData) -> None:
    desk = holding(real_market)
    desk.exchange.faults.update(insufficient_qty_next_orders=1)
    assert desk.order(qty="1")["status"] == "new"  # a buy: not refused, not counted
    desk.to(at(14, 33))  # filled (a stop sell would be a wash trade with it before)
    assert refused(stop, desk, "3").message.startswith("insufficient qty")


def test_server_error_before_and_after_the_order_is_created(real_market: MarketData) -> None:
    desk = holding(real_market)
    desk.exchange.faults.update(error_next_orders=1, http_status=503)
    error = refused(desk.order, side="sell", qty="100", client_order_id="a")
    assert error.status == 503
    assert desk.exchange.orders.list_orders(KEY, status="open") == []  # not created: "a" is free
    desk.exchange.faults.update(error_after_next_orders=1)
    error = refused(desk.order, side="sell", qty="100", client_order_id="a")
    assert error.status == 503
    # created and working: only the answer was lost
    assert desk.exchange.orders.get_order_by_client_id(KEY, "a")["status"] == "new"


@pytest.mark.parametrize(
    ("fault", "status"), [("cancel_next_orders", "canceled"), ("expire_next_orders", "expired")]
)
def test_accepted_then_ended_by_the_broker(
    real_market: MarketData, fault: str, status: str
) -> None:
    desk = holding(real_market)
    desk.exchange.faults.update(**{fault: 1})
    answer = stop(desk, "3")
    assert answer["status"] == "new"  # the reply: accepted
    assert desk.event_names(answer["id"]) == ["new", status]
    assert desk.exchange.orders.get_order(KEY, answer["id"])["status"] == status
    assert stop(desk, "3")["status"] == "new"


def test_partly_filled_then_the_rest_works_on(real_market: MarketData) -> None:
    desk = holding(real_market)
    desk.exchange.faults.update(partial_next_orders=1)
    sell = desk.order(side="sell", qty="100")
    desk.to(at(14, 32))
    assert desk.event_names(sell["id"]) == ["new", "partial_fill"]
    assert desk.exchange.orders.get_order(KEY, sell["id"])["filled_qty"] == "50"
    desk.to(at(14, 33))
    assert desk.event_names(sell["id"])[-1] == "fill"


def test_held_cancel_and_replace_stay_pending_for_hold_seconds(real_market: MarketData) -> None:
    desk = holding(real_market)
    order = stop(desk, "3")
    desk.exchange.faults.update(hold_next_cancels=1, hold_next_replaces=1, hold_seconds=30)
    new = replace(desk, order["id"], stop_price=Decimal("3.5"))
    desk.to(at(14, 31, 29))
    assert desk.exchange.orders.get_order(KEY, order["id"])["status"] == "pending_replace"
    assert desk.exchange.next_due() == at(14, 31, 30)
    desk.to(at(14, 31, 30))
    assert desk.exchange.orders.get_order(KEY, order["id"])["status"] == "replaced"
    desk.exchange.orders.cancel_order(KEY, new["id"])
    desk.to(at(14, 31, 59))
    assert desk.exchange.orders.get_order(KEY, new["id"])["status"] == "pending_cancel"
    desk.to(at(14, 31, 30) + timedelta(seconds=30))
    assert desk.exchange.orders.get_order(KEY, new["id"])["status"] == "canceled"


def test_server_errors_on_cancels_and_replaces(real_market: MarketData) -> None:
    desk = holding(real_market)
    order = stop(desk, "3")
    desk.exchange.faults.update(error_next_replaces=1, error_next_cancels=1)
    assert refused(replace, desk, order["id"], stop_price=Decimal("3.5")).status == 503
    assert refused(desk.exchange.orders.cancel_order, KEY, order["id"]).status == 503
    assert desk.exchange.orders.get_order(KEY, order["id"])["status"] == "new"  # nothing done
    desk.exchange.faults.update(error_after_next_replaces=1)
    assert refused(replace, desk, order["id"], stop_price=Decimal("3.5")).status == 503
    assert desk.exchange.orders.get_order(KEY, order["id"])["status"] == "pending_replace"
    desk.to(at(14, 31, 2))
    (new,) = desk.exchange.orders.list_orders(KEY, status="open")
    desk.exchange.faults.update(error_after_next_cancels=1)
    assert refused(desk.exchange.orders.cancel_order, KEY, new["id"]).status == 503
    assert desk.exchange.orders.get_order(KEY, new["id"])["status"] == "pending_cancel"
    desk.to(at(14, 31, 4))
    assert desk.exchange.orders.get_order(KEY, new["id"])["status"] == "canceled"
