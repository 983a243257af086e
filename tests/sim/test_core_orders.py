"""Order matching on the real AMC minute bars of 2024-12-10 (values quoted from the CSV)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from desk import CLOSE, KEY, OPEN, Desk, at

from magellan_sim.errors import SimError
from magellan_sim.market.market import MarketData


@pytest.fixture(scope="module")
def real_market(bars_dir: Path) -> MarketData:
    """The shared real bars (loaded lazily)."""
    return MarketData.from_dir(bars_dir)


def test_market_buy_in_session_fills_at_next_bar_open(real_market: MarketData) -> None:
    desk = Desk.start(real_market, at(14, 30, 30))
    order = desk.order(client_order_id="mkt-1")
    assert order["status"] == "new"
    assert desk.event_names() == ["new"]
    # The first bar starting at/after 14:30:30 is 14:31 (open 4.485); it completes at 14:32.
    desk.to(at(14, 31, 59))
    assert desk.event_names() == ["new"]
    desk.to(at(14, 32))
    fill = desk.events[-1]
    assert fill["event"] == "fill"
    assert (fill["price"], fill["qty"], fill["position_qty"]) == ("4.485", "100", "100")
    assert fill["timestamp"] == "2024-12-10T14:32:00Z"
    uuid.UUID(fill["execution_id"])
    assert fill["order"]["status"] == "filled"
    assert fill["order"]["filled_avg_price"] == "4.485"
    account = desk.exchange.accounts.get_account(KEY)
    assert account["cash"] == "99551.5"
    position = desk.exchange.accounts.get_position(KEY, "AMC")
    assert (position["qty"], position["avg_entry_price"]) == ("100", "4.485")
    # Valued at the latest completed bar (14:31 closes 4.48).
    assert position["current_price"] == "4.48"
    assert account["equity"] == "99999.5"


def test_market_order_while_closed_waits_for_the_open(real_market: MarketData) -> None:
    desk = Desk.start(real_market, at(14, 25))
    order = desk.order()
    assert order["status"] == "accepted"
    assert desk.events == []
    desk.to(OPEN)
    assert desk.event_names() == ["new"]
    assert desk.exchange.orders.get_order(KEY, order["id"])["status"] == "new"
    desk.to(at(14, 31))  # the 14:30 bar (open 4.53) completed
    assert desk.event_names() == ["new", "fill"]
    assert desk.events[-1]["price"] == "4.53"


def test_limit_and_stop_trigger_on_the_bar_range(real_market: MarketData) -> None:
    # a buy limit resting beside sell stops is a wash trade at Alpaca: switched off here
    desk = Desk.start(real_market, at(14, 25), wash_trade_check=False)
    desk.order(qty="300")
    desk.to(at(14, 31))  # bought 300 at the 14:30 open
    limit = desk.order(type="limit", limit_price=Decimal("4.45"), time_in_force="gtc")
    stop = desk.order(side="sell", type="stop", stop_price=Decimal("4.46"), qty="100")
    gap = desk.order(side="sell", type="stop", stop_price=Decimal("4.50"), qty="100")
    desk.to(at(14, 32))
    # 14:31 bar: open 4.485, low 4.465. The 4.50 stop is gapped through: fills at the open.
    assert desk.event_names(gap["id"])[-1] == "fill"
    assert desk.events[-1]["price"] == "4.485"
    assert desk.event_names(stop["id"]) == ["new"]
    assert desk.event_names(limit["id"]) == ["new"]
    desk.to(at(14, 33))
    # 14:32 bar: open 4.4888, low 4.45: the stop fills at 4.46, the limit at 4.45.
    prices = {e["order"]["id"]: e["price"] for e in desk.events if e["event"] == "fill"}
    assert prices[stop["id"]] == "4.46"
    assert prices[limit["id"]] == "4.45"
    assert desk.exchange.accounts.get_position(KEY, "AMC")["qty"] == "200"


def test_stop_limit_and_ioc(real_market: MarketData) -> None:
    desk = Desk.start(real_market, at(14, 31))
    stop_limit = desk.order(
        type="stop_limit", stop_price=Decimal("4.49"), limit_price=Decimal("4.50")
    )
    ioc = desk.order(type="limit", limit_price=Decimal("4.40"), time_in_force="ioc")
    desk.to(at(14, 32))
    # 14:31 bar high 4.4999 reaches the 4.49 buy stop; the trigger price 4.49 is within 4.50.
    assert desk.event_names(stop_limit["id"]) == ["new", "fill"]
    assert desk.exchange.orders.get_order(KEY, stop_limit["id"])["filled_avg_price"] == "4.49"
    # The IOC limit 4.40 is below the bar's low 4.465: canceled after its one bar.
    assert desk.event_names(ioc["id"]) == ["new", "canceled"]


def test_day_orders_expire_at_the_close_gtc_persists(real_market: MarketData) -> None:
    desk = Desk.start(real_market, at(15, 0))
    day = desk.order(type="limit", limit_price=Decimal("1"))
    gtc = desk.order(type="limit", limit_price=Decimal("1"), time_in_force="gtc")
    desk.to(at(20, 59, 59))
    assert desk.event_names(day["id"]) == ["new"]
    desk.to(CLOSE)
    assert desk.event_names(day["id"]) == ["new", "expired"]
    expired = desk.exchange.orders.get_order(KEY, day["id"])
    assert (expired["status"], expired["expired_at"]) == ("expired", "2024-12-10T21:00:00Z")
    assert desk.exchange.orders.get_order(KEY, gtc["id"])["status"] == "new"
    assert [o["id"] for o in desk.exchange.orders.list_orders(KEY)] == [gtc["id"]]


def test_opg_window_and_opening_fill(real_market: MarketData) -> None:
    desk = Desk.start(real_market, at(14, 29))  # 09:29 New York
    with pytest.raises(SimError) as refused:
        desk.order(time_in_force="opg")
    assert refused.value.status == 422
    assert refused.value.message == "opg orders must be submitted after 7:00pm and before 9:28am"
    desk = Desk.start(real_market, at(14, 27))  # 09:27 New York
    opg = desk.order(time_in_force="opg")
    assert opg["status"] == "accepted"
    desk.to(at(14, 31))
    assert desk.event_names(opg["id"]) == ["new", "fill"]
    assert desk.events[-1]["price"] == "4.53"  # the session's first bar's open


def test_instant_replace_and_cancel_events(real_market: MarketData) -> None:
    # latencies 0: the replace and the cancel take effect within the request
    desk = Desk.start(real_market, at(15, 0), cancel_latency=0, replace_latency=0)
    old = desk.order(type="limit", limit_price=Decimal("4"), time_in_force="gtc")
    new = desk.exchange.orders.replace_order(
        KEY,
        old["id"],
        qty=None,
        limit_price=Decimal("4.1"),
        stop_price=None,
        time_in_force=None,
        client_order_id=None,
    )
    assert new["replaces"] == old["id"]
    assert new["limit_price"] == "4.1"
    assert new["qty"] == "100"
    replaced = desk.events[-2]
    assert replaced["event"] == "replaced"
    assert replaced["order"]["id"] == old["id"]
    assert replaced["order"]["status"] == "replaced"
    assert replaced["order"]["replaced_by"] == new["id"]
    assert (desk.events[-1]["event"], desk.events[-1]["order"]["id"]) == ("new", new["id"])
    desk.exchange.orders.cancel_order(KEY, new["id"])
    assert desk.event_names(new["id"]) == ["new", "canceled"]
    for order_id, state in ((new["id"], "canceled"), (old["id"], "replaced")):
        with pytest.raises(SimError) as terminal:
            desk.exchange.orders.cancel_order(KEY, order_id)
        assert (terminal.value.status, terminal.value.code) == (422, 42210000)
        assert terminal.value.message == f'order is already in "{state}" state'


def test_held_for_orders_blocks_a_sell_until_the_stop_is_reduced(
    real_market: MarketData,
) -> None:
    desk = Desk.start(real_market, at(15, 0))
    desk.order()
    desk.to(at(15, 2))
    stop = desk.order(side="sell", type="stop", stop_price=Decimal("3"), time_in_force="gtc")
    with pytest.raises(SimError) as blocked:
        desk.order(side="sell", qty="10")
    body = blocked.value.body()
    assert blocked.value.status == 403
    assert body["code"] == 40310000
    assert body["message"] == "insufficient qty available for order (requested: 10, available: 0)"
    assert (body["available"], body["existing_qty"], body["held_for_orders"]) == ("0", "100", "100")
    assert body["related_orders"] == [stop["id"]]
    assert body["symbol"] == "AMC"
    assert desk.exchange.accounts.get_position(KEY, "AMC")["qty_available"] == "0"
    # A replace counts the order's own reservation as available.
    smaller = desk.exchange.orders.replace_order(
        KEY,
        stop["id"],
        qty=Decimal(90),
        limit_price=None,
        stop_price=None,
        time_in_force=None,
        client_order_id=None,
    )
    # while the replace is in flight the two orders hold the larger qty (100), not both
    assert desk.exchange.accounts.get_position(KEY, "AMC")["qty_available"] == "0"
    desk.to(at(15, 2, 2))  # the replace completed
    assert desk.exchange.accounts.get_position(KEY, "AMC")["qty_available"] == "10"
    sold = desk.order(side="sell", qty="10")
    assert sold["status"] == "new"
    with pytest.raises(SimError):
        desk.exchange.accounts.close_position(KEY, "AMC", qty=None, percentage=None)
    desk.exchange.orders.cancel_order(KEY, smaller["id"])
    with pytest.raises(SimError) as short:
        desk.order(side="sell", qty="200")  # shorting is disabled
    assert short.value.status == 403


def test_client_order_id_unique_forever_and_unknown_order(real_market: MarketData) -> None:
    desk = Desk.start(real_market, at(15, 0))
    first = desk.order(client_order_id="dup", type="limit", limit_price=Decimal("1"))
    desk.exchange.orders.cancel_order(KEY, first["id"])
    with pytest.raises(SimError) as duplicate:
        desk.order(client_order_id="dup")
    assert duplicate.value.body() == {"code": 40010001, "message": "client_order_id must be unique"}
    assert duplicate.value.status == 422
    assert desk.exchange.orders.get_order_by_client_id(KEY, "dup")["id"] == first["id"]
    missing = str(uuid.uuid4())
    with pytest.raises(SimError) as unknown:
        desk.exchange.orders.get_order(KEY, missing)
    assert (unknown.value.status, unknown.value.code) == (404, 40410000)
    assert unknown.value.message == f"order not found for {missing}"
    with pytest.raises(SimError) as no_position:
        desk.exchange.accounts.get_position(KEY, "AMC")
    assert no_position.value.message == "position does not exist"


def test_buying_power_checks_count_open_buys(real_market: MarketData) -> None:
    desk = Desk.start(real_market, at(15, 0))
    with pytest.raises(SimError) as too_big:
        desk.order(qty="30000")  # ~ $132k at AMC's 4.40 last price
    assert (too_big.value.status, too_big.value.code) == (403, 40310000)
    assert too_big.value.message == "insufficient buying power"
    assert too_big.value.extra["buying_power"] == "100000"
    desk.order(qty="20000", type="limit", limit_price=Decimal("4.5"))  # holds $90k
    assert desk.exchange.accounts.get_account(KEY)["buying_power"] == "10000"
    with pytest.raises(SimError) as second:
        desk.order(qty="3000", type="limit", limit_price=Decimal("4.5"))
    assert second.value.extra["cost_basis"] == "13500"


def test_bad_parameters_name_the_field(real_market: MarketData) -> None:
    desk = Desk.start(real_market, at(15, 0))
    cases = [
        ({"qty": None}, "qty is required"),
        ({"symbol": "ZZZZ"}, "invalid symbol"),
        ({"type": "limit"}, "limit_price is required for limit orders"),
        ({"time_in_force": "fok"}, "time_in_force"),
        ({"qty": "-1"}, "qty must be > 0"),
    ]
    for fields, message in cases:
        with pytest.raises(SimError) as bad:
            desk.order(**fields)
        assert (bad.value.status, bad.value.code) == (422, 40010001)
        assert message in bad.value.message


def test_partial_fills_then_fill_and_activities(real_market: MarketData) -> None:
    desk = Desk.start(real_market, at(15, 0))
    desk.exchange.faults.update(partial_fill_ratio=0.3)
    order = desk.order(qty="10")
    desk.to(at(15, 10))
    fills = [e for e in desk.events if e["event"] in ("partial_fill", "fill")]
    assert [e["event"] for e in fills] == ["partial_fill"] * 4 + ["fill"]
    assert [e["qty"] for e in fills] == ["3", "3", "2", "1", "1"]
    assert [e["position_qty"] for e in fills] == ["3", "6", "8", "9", "10"]
    assert [e["order"]["filled_qty"] for e in fills] == ["3", "6", "8", "9", "10"]
    activities = desk.exchange.accounts.activities(KEY, activity_types=["FILL"], direction="asc")
    assert [a["cum_qty"] for a in activities] == ["3", "6", "8", "9", "10"]
    assert [a["type"] for a in activities] == ["partial_fill"] * 4 + ["fill"]
    assert {a["order_id"] for a in activities} == {order["id"]}
    first_page = desk.exchange.accounts.activities(KEY, activity_types=None, page_size=2)
    assert [a["cum_qty"] for a in first_page] == ["10", "9"]
    next_page = desk.exchange.accounts.activities(
        KEY, activity_types=None, page_size=2, page_token=first_page[-1]["id"]
    )
    assert [a["cum_qty"] for a in next_page] == ["8", "6"]
    cost = sum(Decimal(a["price"]) * Decimal(a["qty"]) for a in activities)
    assert Decimal(desk.exchange.accounts.get_account(KEY)["cash"]) == Decimal(100000) - cost


def test_rejected_by_fault_and_close_all(real_market: MarketData) -> None:
    desk = Desk.start(real_market, at(15, 0))
    desk.exchange.faults.update(reject_next_orders=1)
    rejected = desk.order()
    assert rejected["status"] == "accepted"
    assert desk.event_names(rejected["id"]) == ["rejected"]
    assert desk.exchange.orders.get_order(KEY, rejected["id"])["status"] == "rejected"
    desk.order()
    desk.to(at(15, 2))
    buy = desk.order(type="limit", limit_price=Decimal("1"))
    items = desk.exchange.accounts.close_all_positions(KEY, cancel_orders=True)
    # The buy's cancel is in flight: it still rests, so the market sell would trade with it.
    assert [(i["symbol"], i["status"]) for i in items] == [("AMC", 403)]
    assert items[0]["body"]["message"] == "potential wash trade detected. use complex orders"
    assert desk.exchange.orders.get_order(KEY, buy["id"])["status"] == "pending_cancel"
    desk.to(at(15, 2, 2))
    assert desk.event_names(buy["id"]) == ["new", "pending_cancel", "canceled"]
    items = desk.exchange.accounts.close_all_positions(KEY, cancel_orders=True)
    assert [(i["symbol"], i["status"], i["body"]["side"]) for i in items] == [("AMC", 200, "sell")]
    assert desk.exchange.orders.list_orders(KEY, status="open")[0]["side"] == "sell"
    desk.to(at(15, 4))
    assert desk.exchange.accounts.list_positions(KEY) == []


def test_daily_and_hourly_only_symbols_fill_on_their_minute_path(
    real_market: MarketData,
) -> None:
    # SPY has 1Day bars only (2024-12-10: O 604.25 H 605.8 L 602.13 C 603.26); NVDA has
    # 1Hour bars (14:00Z: O 138.75 H 141.82 L 138.6 C 140.93).
    desk = Desk.start(real_market, at(14, 31))  # 09:31 New York
    spy = desk.order(symbol="SPY", qty="1")
    nvda = desk.order(symbol="NVDA", qty="1")
    desk.to(at(14, 32))
    # Both fill at the open of the first path minute starting at/after 09:31.
    for order, low, high in ((spy, 602.13, 605.8), (nvda, 138.6, 141.82)):
        filled = desk.exchange.orders.get_order(KEY, order["id"])
        assert (filled["status"], filled["filled_at"]) == ("filled", "2024-12-10T14:32:00Z")
        assert low <= float(filled["filled_avg_price"]) <= high
    # The same path on every run, whatever was queried before.
    again = Desk.start(real_market, at(14, 31))
    again.exchange.data.latest_trades(["SPY", "NVDA"])
    copies = {o["id"]: again.order(symbol=o["symbol"], qty="1")["id"] for o in (nvda, spy)}
    again.to(at(14, 32))
    for original, copy in copies.items():
        price = again.exchange.orders.get_order(KEY, copy)["filled_avg_price"]
        assert price == desk.exchange.orders.get_order(KEY, original)["filled_avg_price"]
    # Last trade and position value follow the path minute by minute, never the future.
    desk.to(at(15, 0, 30))
    trade = desk.exchange.data.latest_trades(["SPY"])["trades"]["SPY"]
    assert trade["t"] == "2024-12-10T14:59:59Z"
    assert desk.exchange.accounts.get_position(KEY, "SPY")["current_price"] == str(trade["p"])
    # The bar endpoints still serve only the real bars: the day's bar is not complete yet.
    assert desk.exchange.data.latest_bars(["SPY"])["bars"]["SPY"]["t"] == "2024-12-09T05:00:00Z"
    # Sent while closed, a daily-only order waits for the open and fills in the first minute.
    desk.to(CLOSE)
    overnight = desk.order(symbol="SPY", qty="1")
    assert overnight["status"] == "accepted"
    desk.to(OPEN + timedelta(days=1, minutes=1))
    filled = desk.exchange.orders.get_order(KEY, overnight["id"])
    assert filled["filled_at"] == "2024-12-11T14:31:00Z"
    assert float(filled["filled_avg_price"]) == 603.26  # 2024-12-11 opens at 603.26


def test_notional_buy_fills_fractional_qty(real_market: MarketData) -> None:
    desk = Desk.start(real_market, at(14, 30, 30))
    order = desk.order(qty=None, notional=Decimal(1000))
    assert (order["qty"], order["notional"]) == (None, "1000")
    desk.to(at(14, 32))
    filled = desk.exchange.orders.get_order(KEY, order["id"])
    assert filled["status"] == "filled"
    assert filled["filled_qty"] == "222.965440356"  # $1000 / 4.485, truncated to 1e-9
