"""The exchange core's corporate actions: the split arithmetic (pure), and a split meeting a
cancel and a replace still in flight, on a made-up GME split (GME has real minute bars on
2024-12-10 and 2024-12-11), with latencies long enough to keep them in flight overnight."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from desk import KEY, Desk, at

from magellan_core.corporate_actions import CorporateAction
from magellan_sim.market.corporate import CorporateBook, dividend_amount, split_holding
from magellan_sim.market.market import MarketData

SPLIT_AT = datetime(2024, 12, 11, 5, 0, tzinfo=UTC)  # 00:00 New York (EST) on the ex-date
GME_SPLIT = CorporateAction(
    "GME", "forward_split", date(2024, 12, 11), Decimal(3), Decimal(2), Decimal(0)
)


@pytest.fixture(scope="module")
def real_market(bars_dir: Path) -> MarketData:
    return MarketData.from_dir(bars_dir)


def test_split_holding_arithmetic() -> None:
    forward = split_holding(
        Decimal(10), Decimal(12110), Decimal(10), Decimal(1), Decimal("120.865")
    )
    assert (forward.qty, forward.cost, forward.fraction, forward.cash_in_lieu) == (100, 12110, 0, 0)
    reverse = split_holding(Decimal(50), Decimal("7.65"), Decimal(1), Decimal(20), Decimal("3.002"))
    assert (reverse.qty, reverse.fraction, reverse.cash_in_lieu) == (
        2,
        Decimal("0.5"),
        Decimal("1.50"),
    )
    assert reverse.cost == Decimal("7.65") * 2 / Decimal("2.5")
    gone = split_holding(Decimal(10), Decimal(2), Decimal(1), Decimal(20), Decimal("3.002"))
    assert (gone.qty, gone.cost, gone.cash_in_lieu) == (0, 0, Decimal("1.50"))
    three_for_two = split_holding(Decimal(7), Decimal(70), Decimal(3), Decimal(2), Decimal(20))
    assert (three_for_two.qty, three_for_two.fraction, three_for_two.cash_in_lieu) == (
        10,
        Decimal("0.5"),
        Decimal("10.00"),
    )
    one_for_three = split_holding(Decimal(9), Decimal(90), Decimal(1), Decimal(3), Decimal(30))
    assert (one_for_three.qty, one_for_three.fraction, one_for_three.cash_in_lieu) == (3, 0, 0)
    ten = split_holding(Decimal(10), Decimal(100), Decimal(1), Decimal(3), Decimal(30))
    assert (ten.qty, ten.fraction, ten.cash_in_lieu) == (
        3,
        Decimal("0.333333333"),
        Decimal("10.00"),
    )
    assert dividend_amount(Decimal(10), Decimal("1.7588")) == Decimal("17.59")


def test_book_schedule_is_midnight_new_york_once() -> None:
    book = CorporateBook([GME_SPLIT])
    assert book.next_due(SPLIT_AT.replace(hour=4)) == SPLIT_AT
    assert book.next_due(SPLIT_AT) is None
    assert book.due_at(SPLIT_AT) == [GME_SPLIT]
    assert book.due_at(SPLIT_AT.replace(minute=1)) == []


def test_a_split_settles_cancels_and_replaces_in_flight(real_market: MarketData) -> None:
    night = 12 * 3600  # seconds: a cancel and a replace sent at 20:00Z are still in flight
    desk = Desk.start(
        real_market,
        at(14, 30, 30),
        corporate_actions=[GME_SPLIT],
        cancel_latency=night,
        replace_latency=night,
    )
    desk.order("GME", "7")
    desk.to(at(14, 32))
    stop = desk.order(
        "GME", "3", side="sell", type="stop", stop_price=Decimal(20), time_in_force="gtc"
    )
    other = desk.order(
        "GME", "4", side="sell", type="limit", limit_price=Decimal(90), time_in_force="gtc"
    )
    desk.to(at(20, 0))
    desk.exchange.orders.cancel_order(KEY, stop["id"])
    new = desk.exchange.orders.replace_order(
        KEY, other["id"], qty=None, limit_price=Decimal(95), stop_price=None,
        time_in_force=None, client_order_id=None,
    )  # fmt: skip
    desk.to(SPLIT_AT)
    at_split = [
        (e["event"], e["order"]["id"])
        for e in desk.events
        if e["timestamp"] == "2024-12-11T05:00:00Z"
    ]
    assert at_split == [
        ("canceled", stop["id"]),
        ("canceled", other["id"]),
        ("order_replace_rejected", other["id"]),
        ("rejected", new["id"]),
    ]
    open_orders = desk.exchange.orders.list_orders(
        KEY, status="open", after=None, until=None, limit=50, direction="desc",
        nested=False, symbols=None, side=None,
    )  # fmt: skip
    assert open_orders == []
    (position,) = desk.exchange.accounts.list_positions(KEY)
    assert (position["qty"], position["qty_available"]) == ("10", "10")  # 7 x 3/2 = 10.5
    (cil,) = desk.exchange.accounts.activities(KEY, activity_types=["CIL"])
    assert cil["qty"] == "0.5"
    seen = len(desk.events)
    desk.to(SPLIT_AT.replace(hour=13))  # the cancel and the replace come due: nothing more
    assert len(desk.events) == seen
