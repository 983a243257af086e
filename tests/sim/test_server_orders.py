"""Orders end to end: alpaca-py's TradingClient and TradingStream against real GME bars.

GME on 2024-12-10 (the session opens 14:30Z), from bars/1Min/GME.csv.gz:
    14:30  O 27.88    H 28.0736  L 27.82    C 28.0399
    14:31  O 28.0253  H 28.0253  L 27.6     C 27.89
    14:32  O 27.9375  H 27.97    L 27.8266  C 27.9155
    14:33  O 27.94    H 28.0     L 27.77    C 27.82
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import (
    LimitOrderRequest,
    MarketOrderRequest,
    ReplaceOrderRequest,
    StopOrderRequest,
)

MINUTE = timedelta(minutes=1)


def market(side: OrderSide, qty: float, **extra) -> MarketOrderRequest:
    return MarketOrderRequest(
        symbol="GME", qty=qty, side=side, time_in_force=TimeInForce.DAY, **extra
    )


async def buy_and_fill(sim, qty: float, updates) -> None:
    """Market-buy ``qty`` GME at the open and wait for its fill (27.88, the 14:30 open)."""
    await sim.step_to(sim.session_open)
    order = await sim.call(sim.trading.submit_order, market(OrderSide.BUY, qty))
    await sim.step_to(sim.session_open + MINUTE)
    events = await sim.drain_until(updates, lambda u: u.event == "fill")
    assert [u.event for u in events] == ["new", "fill"]
    assert all(u.order.id == order.id for u in events)


async def test_market_buy_new_then_fill_updates_position_cash_activities(sim) -> None:
    async with sim.trade_updates() as updates:
        await buy_and_fill(sim, 10, updates)
    position = await sim.call(sim.trading.get_open_position, "GME")
    assert float(position.qty) == 10
    assert float(position.avg_entry_price) == pytest.approx(27.88)
    account = await sim.call(sim.trading.get_account)
    assert float(account.cash) == pytest.approx(100_000 - 278.80)
    fills = await sim.call(sim.trading.get, "/account/activities", {"activity_types": "FILL"})
    assert len(fills) == 1
    assert fills[0]["symbol"] == "GME"
    assert float(fills[0]["qty"]) == 10
    assert float(fills[0]["price"]) == pytest.approx(27.88)
    same = await sim.call(sim.trading.get, "/account/activities/FILL")
    assert [a["id"] for a in same] == [fills[0]["id"]]


async def test_limit_and_stop_trigger_on_real_bars(sim) -> None:
    async with sim.trade_updates() as updates:
        await sim.step_to(sim.session_open)
        limit = LimitOrderRequest(
            symbol="GME",
            qty=10,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.GTC,
            limit_price=27.70,
        )
        order = await sim.call(sim.trading.submit_order, limit)
        assert (await sim.next_item(updates)).event == "new"
        await sim.step_to(sim.session_open + MINUTE)  # 14:30 low 27.82: no fill
        assert updates.empty()
        await sim.step_to(sim.session_open + 2 * MINUTE)  # 14:31 low 27.6: fills at 27.70
        fill = await sim.next_item(updates)
        assert (fill.event, fill.order.id) == ("fill", order.id)
        assert fill.price == pytest.approx(27.70)
        assert fill.position_qty == pytest.approx(10)

        stop = StopOrderRequest(
            symbol="GME",
            qty=10,
            side=OrderSide.SELL,
            time_in_force=TimeInForce.GTC,
            stop_price=27.80,
        )
        stop_order = await sim.call(sim.trading.submit_order, stop)
        assert (await sim.next_item(updates)).event == "new"
        await sim.step_to(sim.session_open + 3 * MINUTE)  # 14:32 low 27.8266: holds
        assert updates.empty()
        await sim.step_to(sim.session_open + 4 * MINUTE)  # 14:33 low 27.77: stop at 27.80
        stopped = await sim.next_item(updates)
        assert (stopped.event, stopped.order.id) == ("fill", stop_order.id)
        assert stopped.price == pytest.approx(27.80)
        assert stopped.position_qty == pytest.approx(0)


async def test_replace_then_cancel_events_in_order(sim) -> None:
    async with sim.trade_updates() as updates:
        await sim.step_to(sim.session_open)
        limit = LimitOrderRequest(
            symbol="GME",
            qty=5,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.DAY,
            limit_price=20.00,
        )
        old = await sim.call(sim.trading.submit_order, limit)
        assert (await sim.next_item(updates)).event == "new"
        request = ReplaceOrderRequest(limit_price=21.00, client_order_id="renewed")
        new = await sim.call(sim.trading.replace_order_by_id, old.id, request)
        assert (new.id, new.replaces, new.status) == (new.id, old.id, "pending_new")
        assert new.id != old.id
        assert float(new.limit_price) == 21.00
        found = await sim.call(sim.trading.get_order_by_client_id, "renewed")
        assert found.id == new.id
        pending = await sim.next_item(updates)
        assert (pending.event, pending.order.id, pending.order.status) == (
            "pending_replace",
            old.id,
            "pending_replace",
        )
        await sim.step_to(sim.session_open + timedelta(seconds=2))  # the replace latency
        replaced, renewed = await sim.next_item(updates), await sim.next_item(updates)
        assert (replaced.event, replaced.order.id) == ("replaced", old.id)  # the OLD order
        assert replaced.order.status == "replaced"
        assert replaced.order.replaced_by == new.id
        assert replaced.order.replaced_at == sim.session_open + timedelta(seconds=2)
        assert (renewed.event, renewed.order.id, renewed.order.status) == ("new", new.id, "new")

        assert await sim.call(sim.trading.cancel_order_by_id, new.id) is None  # 204
        pending = await sim.next_item(updates)
        assert (pending.event, pending.order.status) == ("pending_cancel", "pending_cancel")
        assert (await sim.call(sim.trading.get_order_by_id, new.id)).status == "pending_cancel"
        await sim.step_to(sim.session_open + timedelta(seconds=4))
        canceled = await sim.next_item(updates)
        assert (canceled.event, canceled.order.id) == ("canceled", new.id)
        assert (await sim.call(sim.trading.get_order_by_id, new.id)).status == "canceled"


async def test_resting_stop_holds_shares_until_reduced(sim) -> None:
    async with sim.trade_updates() as updates:
        await buy_and_fill(sim, 10, updates)
        stop = StopOrderRequest(
            symbol="GME",
            qty=10,
            side=OrderSide.SELL,
            time_in_force=TimeInForce.GTC,
            stop_price=20.00,
        )
        stop_order = await sim.call(sim.trading.submit_order, stop)
        with pytest.raises(APIError) as held:
            await sim.call(sim.trading.submit_order, market(OrderSide.SELL, 5))
        assert held.value.status_code == 403
        assert held.value.code == 40310000
        assert "insufficient qty available" in held.value.message

        await sim.call(sim.trading.replace_order_by_id, stop_order.id, ReplaceOrderRequest(qty=5))
        await sim.step_to(sim.clock.now() + timedelta(seconds=2))  # the replace completes
        sell = await sim.call(sim.trading.submit_order, market(OrderSide.SELL, 5))
        assert sell.symbol == "GME"


async def test_error_statuses_and_codes(sim) -> None:
    await sim.step_to(sim.session_open)
    await sim.call(sim.trading.submit_order, market(OrderSide.BUY, 1, client_order_id="once"))
    with pytest.raises(APIError) as duplicate:
        await sim.call(sim.trading.submit_order, market(OrderSide.BUY, 1, client_order_id="once"))
    assert (duplicate.value.status_code, duplicate.value.code) == (422, 40010001)

    with pytest.raises(APIError) as unknown:
        await sim.call(sim.trading.get_order_by_id, "8c9a0c4e-6f6a-4b43-9d3c-0d5d2b7b1a11")
    assert (unknown.value.status_code, unknown.value.code) == (404, 40410000)

    with pytest.raises(APIError) as too_big:
        await sim.call(sim.trading.submit_order, market(OrderSide.BUY, 100_000))
    assert (too_big.value.status_code, too_big.value.code) == (403, 40310000)
    assert too_big.value.message == "insufficient buying power"


async def test_201st_request_in_a_minute_is_429(sim) -> None:
    # alpaca-py retries a 429 three times with time.sleep(3); without retries the test sees
    # the 429 at once instead of sleeping 9 s of wall time.
    sim.trading._retry = 0

    def burst() -> None:
        for _ in range(200 - 1):  # the harness made no request yet; one more below
            sim.trading.get_clock()

    await sim.call(burst)
    await sim.call(sim.trading.get_clock)  # the 200th: still allowed
    with pytest.raises(APIError) as limited:
        await sim.call(sim.trading.get_clock)
    assert (limited.value.status_code, limited.value.code) == (429, 42910000)
    headers = limited.value.response.headers
    assert headers["X-RateLimit-Limit"] == "200"
    assert headers["X-RateLimit-Remaining"] == "0"
    assert int(headers["X-RateLimit-Reset"]) > 0
