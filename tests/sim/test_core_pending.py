"""Cancels and replaces in flight, on the real AMC minute bars of 2024-12-10:
    14:30  O 4.53    H 4.56    L 4.485  C 4.4873
    14:31  O 4.485   H 4.4999  L 4.465  C 4.48
    14:32  O 4.4888  H 4.4999  L 4.45   C 4.4572
A sell stop at 4.46 holds through the 14:31 bar and fills at 4.46 on the 14:32 bar, which
completes at 14:33.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from desk import KEY, Desk, at

from magellan_sim.errors import SimError
from magellan_sim.exchange.pending import Pending, PendingBook
from magellan_sim.market.market import MarketData


@pytest.fixture(scope="module")
def real_market(bars_dir: Path) -> MarketData:
    return MarketData.from_dir(bars_dir)


def holding(market: MarketData, **kwargs) -> Desk:
    """100 AMC bought at the 14:30 open; the clock at 14:31."""
    desk = Desk.start(market, at(14, 29), **kwargs)
    desk.order(qty="100")
    desk.to(at(14, 31))
    return desk


def stop(desk: Desk, price: str = "4.46", qty: str = "100") -> dict:
    return desk.order(
        side="sell", type="stop", stop_price=Decimal(price), time_in_force="gtc", qty=qty
    )


def replace(desk: Desk, order_id: str, **changes) -> dict:
    fields = {"qty": None, "limit_price": None, "stop_price": None, "time_in_force": None}
    fields.update(changes)
    return desk.exchange.orders.replace_order(KEY, order_id, client_order_id=None, **fields)


def refused(call, *args, **kwargs) -> SimError:
    with pytest.raises(SimError) as error:
        call(*args, **kwargs)
    return error.value


def test_cancel_completes_after_its_latency_and_holds_shares_until_then(
    real_market: MarketData,
) -> None:
    desk = holding(real_market)
    order = stop(desk, "3")
    desk.to(at(14, 31, 30))
    assert desk.exchange.orders.cancel_order(KEY, order["id"]) is None
    assert desk.exchange.orders.get_order(KEY, order["id"])["status"] == "pending_cancel"
    assert desk.exchange.next_due() == at(14, 31, 32)
    assert [o["id"] for o in desk.exchange.orders.list_orders(KEY)] == [order["id"]]  # still open
    assert desk.exchange.accounts.get_position(KEY, "AMC")["qty_available"] == "0"
    blocked = refused(desk.order, side="sell", qty="100")
    assert (blocked.status, blocked.extra["held_for_orders"]) == (403, "100")
    again = refused(desk.exchange.orders.cancel_order, KEY, order["id"])
    assert (again.status, again.code) == (422, 42210000)
    assert again.message == 'order is already in "pending_cancel" state'
    desk.to(at(14, 31, 31))
    assert desk.event_names(order["id"]) == ["new", "pending_cancel"]
    desk.to(at(14, 31, 32))
    assert desk.event_names(order["id"]) == ["new", "pending_cancel", "canceled"]
    canceled = desk.exchange.orders.get_order(KEY, order["id"])
    assert (canceled["status"], canceled["canceled_at"]) == ("canceled", "2024-12-10T14:31:32Z")
    assert desk.exchange.next_due() is None
    assert desk.exchange.accounts.get_position(KEY, "AMC")["qty_available"] == "100"


def test_a_stop_reached_while_its_cancel_is_in_flight_fills(real_market: MarketData) -> None:
    desk = holding(real_market)
    order = stop(desk)
    desk.to(at(14, 32, 59))
    desk.exchange.orders.cancel_order(KEY, order["id"])  # due 14:33:01, after the 14:32 bar
    desk.to(at(14, 34))
    assert desk.event_names(order["id"]) == [
        "new",
        "pending_cancel",
        "fill",
        "order_cancel_rejected",
    ]
    rejected = desk.events[-1]
    assert rejected["order"]["status"] == "filled"
    assert rejected["timestamp"] == "2024-12-10T14:33:00Z"
    assert desk.exchange.orders.get_order(KEY, order["id"])["filled_avg_price"] == "4.46"
    assert desk.exchange.accounts.list_positions(KEY) == []
    filled = refused(desk.exchange.orders.cancel_order, KEY, order["id"])
    assert (filled.status, filled.message) == (422, 'order is already in "filled" state')


def test_a_cancel_due_before_the_bar_wins_even_when_the_clock_jumps(
    real_market: MarketData,
) -> None:
    # The exchange catches up in time order: the cancel (14:31:02) before the 14:32 bar's
    # completion (14:33) that would have filled the stop.
    desk = holding(real_market)
    order = stop(desk)
    desk.exchange.orders.cancel_order(KEY, order["id"])
    desk.to(at(14, 40))
    assert desk.event_names(order["id"]) == ["new", "pending_cancel", "canceled"]
    assert desk.exchange.accounts.get_position(KEY, "AMC")["qty"] == "100"


def test_a_fill_at_the_instant_the_cancel_completes_wins(real_market: MarketData) -> None:
    desk = holding(real_market, cancel_latency=60)
    order = stop(desk)
    desk.to(at(14, 32))
    desk.exchange.orders.cancel_order(KEY, order["id"])  # due 14:33:00, with the 14:32 bar's end
    desk.to(at(14, 33))
    assert desk.event_names(order["id"])[-2:] == ["fill", "order_cancel_rejected"]


def test_replace_in_flight_events_and_refusals(real_market: MarketData) -> None:
    desk = holding(real_market)
    old = stop(desk, "3")
    new = replace(desk, old["id"], stop_price=Decimal("3.5"))
    assert (new["status"], new["replaces"]) == ("pending_new", old["id"])
    assert desk.exchange.orders.get_order(KEY, old["id"])["status"] == "pending_replace"
    assert desk.event_names()[-1] == "pending_replace"
    for order_id, state in ((old["id"], "pending_replace"), (new["id"], "pending_new")):
        for call in (
            desk.exchange.orders.cancel_order,
            lambda k, i: replace(desk, i, qty=Decimal(5)),
        ):
            error = refused(call, KEY, order_id)
            assert (error.status, error.code) == (422, 42210000)
            assert error.message == f'order is already in "{state}" state'
    desk.to(at(14, 31, 2))
    assert [(e["event"], e["order"]["id"]) for e in desk.events[-2:]] == [
        ("replaced", old["id"]),
        ("new", new["id"]),
    ]
    replaced = desk.events[-2]["order"]
    assert (replaced["status"], replaced["replaced_by"]) == ("replaced", new["id"])
    assert replaced["replaced_at"] == "2024-12-10T14:31:02Z"
    assert desk.exchange.orders.get_order(KEY, new["id"])["status"] == "new"
    error = refused(replace, desk, old["id"], qty=Decimal(5))
    assert error.message == 'order is already in "replaced" state'


def test_replace_holds_the_larger_qty_not_the_sum(real_market: MarketData) -> None:
    desk = holding(real_market)
    old = stop(desk, "3", qty="60")
    replace(desk, old["id"], qty=Decimal(80))
    position = desk.exchange.accounts.get_position(KEY, "AMC")
    assert position["qty_available"] == "20"  # 100 - max(60, 80), not 100 - 140
    desk.order(side="sell", qty="20", type="limit", limit_price=Decimal("9"))
    blocked = refused(desk.order, side="sell", qty="1", type="limit", limit_price=Decimal("9"))
    assert blocked.status == 403
    assert blocked.extra["held_for_orders"] == "100"


def test_an_order_placed_before_the_open_cannot_be_replaced_until_live(
    real_market: MarketData,
) -> None:
    desk = Desk.start(real_market, at(14, 0))
    order = desk.order(type="limit", limit_price=Decimal("1"))
    error = refused(replace, desk, order["id"], limit_price=Decimal("2"))
    assert (error.status, error.code) == (422, 42210000)
    desk.to(at(14, 30))
    assert replace(desk, order["id"], limit_price=Decimal("2"))["status"] == "pending_new"


def test_an_order_that_fills_during_its_replace_keeps_the_fill(real_market: MarketData) -> None:
    desk = holding(real_market)
    old = stop(desk)
    desk.to(at(14, 32, 59))
    new = replace(desk, old["id"], stop_price=Decimal("4.40"))
    desk.to(at(14, 34))
    assert desk.event_names(old["id"]) == [
        "new",
        "pending_replace",
        "fill",
        "order_replace_rejected",
    ]
    assert desk.events[-2]["order"]["status"] == "filled"  # order_replace_rejected: old order
    assert (desk.events[-1]["event"], desk.events[-1]["order"]["id"]) == ("rejected", new["id"])
    rejected = desk.exchange.orders.get_order(KEY, new["id"])
    assert (rejected["status"], rejected["failed_at"]) == ("rejected", "2024-12-10T14:33:00Z")
    assert desk.exchange.orders.list_orders(KEY) == []


def test_a_partial_fill_during_a_replace_refuses_it(real_market: MarketData) -> None:
    desk = holding(real_market)
    desk.exchange.faults.update(partial_fill_ratio=0.5)
    old = stop(desk)
    desk.to(at(14, 32, 59))
    new = replace(desk, old["id"], stop_price=Decimal("4.40"))
    desk.to(at(14, 33))
    assert desk.event_names(old["id"])[-2:] == ["partial_fill", "order_replace_rejected"]
    assert desk.events[-2]["order"]["status"] == "partially_filled"
    assert desk.exchange.orders.get_order(KEY, old["id"])["status"] == "partially_filled"
    assert desk.exchange.orders.get_order(KEY, new["id"])["status"] == "rejected"


def test_a_partial_fill_during_a_cancel_leaves_the_cancel_to_complete(
    real_market: MarketData,
) -> None:
    desk = holding(real_market)
    desk.exchange.faults.update(partial_fill_ratio=0.5)
    order = stop(desk)
    desk.to(at(14, 32, 59))
    desk.exchange.orders.cancel_order(KEY, order["id"])
    desk.to(at(14, 33, 1))
    assert desk.event_names(order["id"]) == ["new", "pending_cancel", "partial_fill", "canceled"]
    assert desk.events[-2]["order"]["status"] == "pending_cancel"
    canceled = desk.exchange.orders.get_order(KEY, order["id"])
    assert (canceled["status"], canceled["filled_qty"]) == ("canceled", "50")


def test_a_replace_after_the_close_goes_live_at_the_next_open(real_market: MarketData) -> None:
    desk = holding(real_market)
    old = stop(desk, "3")
    desk.to(at(21, 5))
    new = replace(desk, old["id"], stop_price=Decimal("3.5"))
    desk.to(at(21, 6))
    assert desk.exchange.orders.get_order(KEY, new["id"])["status"] == "accepted"
    desk.to(at(14, 30) + timedelta(days=1))
    assert desk.event_names(new["id"]) == ["new"]


def test_a_cancel_in_flight_across_the_open(real_market: MarketData) -> None:
    desk = Desk.start(real_market, at(14, 29, 59), cancel_latency=5)
    order = desk.order(type="limit", limit_price=Decimal("1"))
    desk.exchange.orders.cancel_order(KEY, order["id"])  # due 14:30:04, after the open
    desk.to(at(14, 30, 1))
    assert desk.exchange.orders.get_order(KEY, order["id"])["status"] == "pending_cancel"
    assert refused(desk.exchange.orders.cancel_order, KEY, order["id"]).status == 422
    desk.to(at(14, 30, 4))
    assert desk.event_names(order["id"]) == ["pending_cancel", "canceled"]


def test_cancel_all_puts_every_cancel_in_flight(real_market: MarketData) -> None:
    desk = holding(real_market, wash_trade_check=False)
    first = stop(desk, "3", qty="50")
    second = desk.order(type="limit", limit_price=Decimal("1"), qty="10")
    pending = replace(desk, first["id"], qty=Decimal(40))
    items = desk.exchange.orders.cancel_all_orders(KEY)
    by_id = {i["id"]: i for i in items}
    assert by_id[second["id"]]["status"] == 200
    assert by_id[second["id"]]["body"]["status"] == "pending_cancel"
    for order_id in (first["id"], pending["id"]):  # the replace in flight: one at a time
        assert by_id[order_id]["status"] == 422
        assert by_id[order_id]["body"]["code"] == 42210000
    desk.to(at(14, 31, 2))
    assert desk.exchange.orders.get_order(KEY, second["id"])["status"] == "canceled"
    assert desk.exchange.orders.get_order(KEY, pending["id"])["status"] == "new"


def test_refused_cancel_and_replace_return_the_order_to_its_status(
    real_market: MarketData,
) -> None:
    desk = holding(real_market)
    order = stop(desk, "3")
    desk.exchange.faults.update(refuse_next_cancels=1, refuse_next_replaces=1)
    desk.exchange.orders.cancel_order(KEY, order["id"])
    desk.to(at(14, 31, 2))
    assert desk.event_names(order["id"]) == ["new", "pending_cancel", "order_cancel_rejected"]
    assert desk.events[-1]["order"]["status"] == "new"
    new = replace(desk, order["id"], stop_price=Decimal("3.5"))
    desk.to(at(14, 31, 4))
    assert desk.event_names(order["id"])[-2:] == ["pending_replace", "order_replace_rejected"]
    assert desk.exchange.orders.get_order(KEY, order["id"])["status"] == "new"
    assert desk.event_names(new["id"]) == ["rejected"]
    assert desk.exchange.faults.refuse_next_cancels == 0
    desk.exchange.orders.cancel_order(KEY, order["id"])  # the next one is not refused
    desk.to(at(14, 31, 6))
    assert desk.event_names(order["id"])[-1] == "canceled"


def test_zero_latency_refusal_needs_no_wait(real_market: MarketData) -> None:
    desk = holding(real_market, cancel_latency=0)
    order = stop(desk, "3")
    desk.exchange.faults.update(refuse_next_cancels=1)
    desk.exchange.orders.cancel_order(KEY, order["id"])
    assert desk.event_names(order["id"]) == ["new", "order_cancel_rejected"]
    desk.exchange.orders.cancel_order(KEY, order["id"])
    assert desk.event_names(order["id"])[-1] == "canceled"


def test_pending_book_orders_by_due_then_arrival() -> None:
    book = PendingBook()
    t = at(14, 31)

    def action(order_id: str, seconds: int) -> Pending:
        return Pending(
            kind="cancel",
            account_key=KEY,
            order_id=order_id,
            due=t + timedelta(seconds=seconds),
            previous_status="new",
        )

    for order_id, seconds in (("b", 2), ("a", 1), ("c", 2)):
        book.add(action(order_id, seconds))
    with pytest.raises(ValueError):
        book.add(action("a", 5))
    assert book.next_due() == t + timedelta(seconds=1)
    assert [a.order_id for a in book.take_due(t + timedelta(seconds=2))] == ["a", "b", "c"]
    assert (book.next_due(), len(book)) == (None, 0)
