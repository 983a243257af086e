"""Fault injection as a client sees it: dropped streams, HTTP errors, latency, partial fills."""

from __future__ import annotations

import time
from datetime import timedelta

import aiohttp
import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import MarketOrderRequest

MINUTE = timedelta(minutes=1)


def buy(qty: float) -> MarketOrderRequest:
    return MarketOrderRequest(
        symbol="GME", qty=qty, side=OrderSide.BUY, time_in_force=TimeInForce.DAY
    )


async def post_faults(sim, **faults) -> dict:
    async with (
        aiohttp.ClientSession(sim.server.url) as http,
        http.post("/sim/faults", json=faults) as response,
    ):
        assert response.status == 200
        return await response.json()


async def test_dropped_trade_stream_reconnects_and_events_resume(sim) -> None:
    async with sim.trade_updates() as updates:
        assert sim.server._hub.trade_listeners(sim.key) == 1
        after = await post_faults(sim, drop_streams=True)
        assert after["drop_streams"] is False  # applied once, then reset
        # alpaca-py's own reconnect (0.5-1 s of wall-clock backoff, once)
        await sim.server.wait_trade_listeners(sim.key)
        await sim.step_to(sim.session_open)
        order = await sim.call(sim.trading.submit_order, buy(1))
        event = await sim.next_item(updates)
        assert (event.event, event.order.id) == ("new", order.id)


async def test_http_errors_and_latency_are_injected(sim) -> None:
    await post_faults(sim, http_error_rate=1.0, http_status=503)
    with pytest.raises(APIError) as unavailable:
        await sim.call(sim.trading.get_account)
    assert unavailable.value.status_code == 503
    assert unavailable.value.code == 50300000

    await post_faults(sim, http_error_rate=0.0, latency_ms=150)
    began = time.monotonic()
    assert (await sim.call(sim.trading.get_account)).status == "ACTIVE"
    assert time.monotonic() - began >= 0.15


async def test_http_error_rate_is_deterministic_for_a_seed(sim) -> None:
    async def outcomes() -> list[int]:
        statuses = []
        async with aiohttp.ClientSession(sim.server.url) as http:
            for _ in range(40):
                async with http.get("/v2/clock") as response:
                    statuses.append(response.status)
        return statuses

    await post_faults(sim, http_error_rate=0.5, http_status=500, seed=7)
    first = await outcomes()
    await post_faults(sim, seed=8)
    await post_faults(sim, seed=7)  # a seed change restarts the fault sequence
    assert await outcomes() == first
    assert set(first) == {200, 500}


async def test_partial_fills_then_fill(sim) -> None:
    sim.exchange.faults.update(partial_fill_ratio=0.3)
    async with sim.trade_updates() as updates:
        await sim.step_to(sim.session_open)
        order = await sim.call(sim.trading.submit_order, buy(10))
        assert (await sim.next_item(updates)).event == "new"
        await sim.step_minutes(6)
        events = await sim.drain_until(updates, lambda u: u.event == "fill")
    assert {u.event for u in events[:-1]} == {"partial_fill"}
    assert len(events) >= 2
    assert all(u.order.id == order.id for u in events)
    assert sum(u.qty for u in events) == pytest.approx(10)
    assert events[-1].position_qty == pytest.approx(10)
