"""As strict as Alpaca, seen through the unmodified alpaca-py clients over loopback: cancels
and replaces in flight, held shares, wash trades, and daily/hourly-only symbols that fill
near the moment they are bought.

GME on 2024-12-10 (the session opens 14:30Z), from bars/1Min/GME.csv.gz:
    14:30  O 27.88    H 28.0736  L 27.82    C 28.0399
    14:31  O 28.0253  H 28.0253  L 27.6     C 27.89
A sell stop at 27.80 placed at 14:31 triggers on the 14:31 bar: it fills at 27.80 at 14:32.
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
SECOND = timedelta(seconds=1)


def market(side: OrderSide, qty: float, symbol: str = "GME") -> MarketOrderRequest:
    return MarketOrderRequest(symbol=symbol, qty=qty, side=side, time_in_force=TimeInForce.DAY)


def sell_stop(price: float, qty: float = 10) -> StopOrderRequest:
    return StopOrderRequest(
        symbol="GME", qty=qty, side=OrderSide.SELL, time_in_force=TimeInForce.GTC, stop_price=price
    )


async def own_ten_gme(sim, updates) -> None:
    """Bought at the 14:30 open (27.88); the clock at 14:31 with the fill received."""
    await sim.step_to(sim.session_open)
    await sim.call(sim.trading.submit_order, market(OrderSide.BUY, 10))
    await sim.step_to(sim.session_open + MINUTE)
    await sim.drain_until(updates, lambda u: u.event == "fill")


async def test_a_stop_that_fills_while_its_cancel_is_pending(sim) -> None:
    async with sim.trade_updates() as updates:
        await own_ten_gme(sim, updates)
        stop = await sim.call(sim.trading.submit_order, sell_stop(27.80))
        assert (await sim.next_item(updates)).event == "new"
        await sim.step_to(sim.session_open + 2 * MINUTE - SECOND)  # 14:31:59
        assert await sim.call(sim.trading.cancel_order_by_id, stop.id) is None  # 204
        pending = await sim.next_item(updates)
        assert (pending.event, pending.order.status) == ("pending_cancel", "pending_cancel")
        await sim.step_to(sim.session_open + 2 * MINUTE + 5 * SECOND)  # past the latency
        fill, rejected = await sim.next_item(updates), await sim.next_item(updates)
        assert (fill.event, fill.order.id, fill.price) == ("fill", stop.id, 27.80)
        assert (rejected.event, rejected.order.id) == ("order_cancel_rejected", stop.id)
        assert rejected.order.status == "filled"
        assert updates.empty()  # no canceled event, ever
        order = await sim.call(sim.trading.get_order_by_id, stop.id)
        assert (order.status, order.canceled_at) == ("filled", None)
        with pytest.raises(APIError) as filled:
            await sim.call(sim.trading.cancel_order_by_id, stop.id)
        assert (filled.value.status_code, filled.value.code) == (422, 42210000)
        assert filled.value.message == 'order is already in "filled" state'


async def test_shares_stay_held_until_the_cancel_completes(sim) -> None:
    async with sim.trade_updates() as updates:
        await own_ten_gme(sim, updates)
        stop = await sim.call(sim.trading.submit_order, sell_stop(20.00))
        await sim.call(sim.trading.cancel_order_by_id, stop.id)
        position = await sim.call(sim.trading.get_open_position, "GME")
        assert float(position.qty_available) == 0
        with pytest.raises(APIError) as held:
            await sim.call(sim.trading.submit_order, market(OrderSide.SELL, 10))
        assert (held.value.status_code, held.value.code) == (403, 40310000)
        assert "insufficient qty available" in held.value.message
        await sim.step_to(sim.clock.now() + 2 * SECOND)
        events = await sim.drain_until(updates, lambda u: u.event == "canceled")
        assert [u.event for u in events] == ["new", "pending_cancel", "canceled"]
        sold = await sim.call(sim.trading.submit_order, market(OrderSide.SELL, 10))
        assert sold.side == "sell"


async def test_a_replace_is_refused_while_one_is_pending(sim) -> None:
    async with sim.trade_updates() as updates:
        await own_ten_gme(sim, updates)
        stop = await sim.call(sim.trading.submit_order, sell_stop(20.00))
        new = await sim.call(
            sim.trading.replace_order_by_id, stop.id, ReplaceOrderRequest(stop_price=21.0)
        )
        assert new.status == "pending_new"
        for order_id, state in ((stop.id, "pending_replace"), (new.id, "pending_new")):
            with pytest.raises(APIError) as refused:
                await sim.call(
                    sim.trading.replace_order_by_id, order_id, ReplaceOrderRequest(stop_price=22.0)
                )
            assert (refused.value.status_code, refused.value.code) == (422, 42210000)
            assert refused.value.message == f'order is already in "{state}" state'
        with pytest.raises(APIError) as no_cancel:
            await sim.call(sim.trading.cancel_order_by_id, stop.id)
        assert no_cancel.value.status_code == 422
        await sim.step_to(sim.clock.now() + 2 * SECOND)
        events = await sim.drain_until(updates, lambda u: u.event == "new" and u.order.id == new.id)
        assert [u.event for u in events] == ["new", "pending_replace", "replaced", "new"]


async def test_held_quantity_during_a_replace_is_the_larger_not_the_sum(sim) -> None:
    async with sim.trade_updates() as updates:
        await own_ten_gme(sim, updates)
        stop = await sim.call(sim.trading.submit_order, sell_stop(20.00, qty=4))
        await sim.call(sim.trading.replace_order_by_id, stop.id, ReplaceOrderRequest(qty=6))
        position = await sim.call(sim.trading.get_open_position, "GME")
        assert float(position.qty_available) == 4  # 10 - max(4, 6), not 10 - (4 + 6)
        await sim.call(sim.trading.submit_order, market(OrderSide.SELL, 4))
        with pytest.raises(APIError) as held:
            await sim.call(sim.trading.submit_order, market(OrderSide.SELL, 1))
        assert (held.value.status_code, held.value.code) == (403, 40310000)
        assert held.value.message == (
            "insufficient qty available for order (requested: 1, available: 0)"
        )


async def test_an_order_that_could_trade_with_our_own_is_a_wash_trade(sim) -> None:
    async with sim.trade_updates() as updates:
        await own_ten_gme(sim, updates)
        await sim.call(sim.trading.submit_order, sell_stop(20.00))
        buy_limit = LimitOrderRequest(
            symbol="GME", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY, limit_price=25
        )
        with pytest.raises(APIError) as wash:
            await sim.call(sim.trading.submit_order, buy_limit)
        assert (wash.value.status_code, wash.value.code) == (403, 40310000)
        assert wash.value.message == "potential wash trade detected. use complex orders"


@pytest.mark.exchange(wash_trade_check=False)
async def test_with_the_check_off_opposite_orders_rest_together(sim) -> None:
    async with sim.trade_updates() as updates:
        await own_ten_gme(sim, updates)
        await sim.call(sim.trading.submit_order, sell_stop(20.00))
        buy_limit = LimitOrderRequest(
            symbol="GME", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY, limit_price=25
        )
        assert (await sim.call(sim.trading.submit_order, buy_limit)).status == "new"


@pytest.mark.parametrize(
    ("symbol", "low", "high"),
    [
        ("AMZN", 224.2002, 229.06),  # 1Day only: the day's range
        ("NVDA", 138.6, 141.82),  # 1Hour: the 14:00Z hour's range
    ],
)
async def test_a_0931_market_buy_on_a_coarse_symbol_fills_near_the_open(
    sim, symbol: str, low: float, high: float
) -> None:
    async with sim.trade_updates() as updates:
        sent_at = sim.session_open + MINUTE  # 09:31 New York
        await sim.step_to(sent_at)
        order = await sim.call(sim.trading.submit_order, market(OrderSide.BUY, 1, symbol))
        await sim.step_minutes(2)
        events = await sim.drain_until(updates, lambda u: u.event == "fill")
    fill = events[-1]
    assert fill.order.id == order.id
    assert fill.timestamp - sent_at <= 2 * MINUTE
    assert low <= fill.price <= high
    account = await sim.call(sim.trading.get_account)  # REST agrees with the stream
    assert float(account.cash) == pytest.approx(100_000 - fill.price)


async def test_the_canceled_event_is_sent_on_time_with_no_request_and_a_running_clock(
    sim,
) -> None:
    async with sim.trade_updates() as updates:
        await sim.step_to(sim.session_open + 5 * SECOND)  # 55 s before the next minute
        order = await sim.call(
            sim.trading.submit_order,
            LimitOrderRequest(
                symbol="GME",
                qty=1,
                side=OrderSide.BUY,
                time_in_force=TimeInForce.DAY,
                limit_price=1,
            ),
        )
        assert (await sim.next_item(updates)).event == "new"
        await sim.call(sim.trading.cancel_order_by_id, order.id)
        assert (await sim.next_item(updates)).event == "pending_cancel"
        sim.clock.set_speed(20)  # virtual time runs; nobody calls the simulator any more
        try:
            canceled = await sim.next_item(updates)
            received_at = sim.clock.now()
        finally:
            sim.clock.set_speed(0)
    due = sim.session_open + 7 * SECOND
    assert (canceled.event, canceled.timestamp) == ("canceled", due)
    # the publisher woke for it, not at the next minute boundary 53 s later
    assert received_at < due + 20 * SECOND
