"""Hooks as a client sees them (``/sim/hooks``): faults that begin at the first matching
request, a request held at the hook while the test acts, and a hook on a trade update
(the frame still reaches the client)."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import MarketOrderRequest


def buy(qty: float, cid: str) -> MarketOrderRequest:
    return MarketOrderRequest(
        symbol="GME",
        qty=qty,
        side=OrderSide.BUY,
        time_in_force=TimeInForce.DAY,
        client_order_id=cid,
    )


async def arm(sim, **hook) -> dict:
    async with (
        aiohttp.ClientSession(sim.server.url) as http,
        http.post("/sim/hooks", json=hook) as response,
    ):
        assert response.status == 200, await response.text()
        return await response.json()


async def test_a_hook_starts_its_faults_at_the_first_matching_order(sim) -> None:
    await sim.step_to(sim.session_open)
    await arm(
        sim, name="stop", method="POST", client_order_id="-ps-", faults={"refuse_next_orders": 2}
    )
    await sim.call(sim.trading.submit_order, buy(1, "t-entry"))  # no match: accepted
    for cid in ("t-ps-1", "t-tp1"):  # the matching order and the next one are refused
        with pytest.raises(APIError) as refused:
            await sim.call(sim.trading.submit_order, buy(1, cid))
        assert refused.value.status_code == 403
    await sim.call(sim.trading.submit_order, buy(1, "t-ps-2"))  # one-shot: accepted
    async with (
        aiohttp.ClientSession(sim.server.url) as http,
        http.get("/sim/hooks/stop") as response,
    ):
        state = await response.json()
    assert state["hits"] == 1 and [s["client_order_id"] for s in state["seen"]] == ["t-ps-1"]


async def test_a_request_is_held_at_the_hook_until_released(sim) -> None:
    await sim.step_to(sim.session_open)
    await arm(sim, name="submit", method="POST", path="^/v2/orders$", when="after", hold_seconds=30)
    reply = asyncio.create_task(sim.call(sim.trading.submit_order, buy(1, "held-entry")))
    hook = sim.server.hooks.get("submit")
    await asyncio.wait_for(hook.wait_hit(), 10)
    # the broker has the order, the client has no answer yet
    assert hook.holding and not reply.done()
    assert sim.exchange.orders.get_order_by_client_id(sim.key, "held-entry")["status"] in (
        "new",
        "accepted",
    )
    async with (
        aiohttp.ClientSession(sim.server.url) as http,
        http.get("/sim/hooks/submit?wait=1") as response,
    ):
        assert (await response.json())["holding"] is True
        async with http.post("/sim/hooks/submit/release") as released:
            assert released.status == 200
    order = await asyncio.wait_for(reply, 10)
    assert order.client_order_id == "held-entry" and not hook.holding


async def test_a_trade_update_hook_is_hit_as_the_fill_frame_is_written(sim) -> None:
    await sim.step_to(sim.session_open)
    await arm(
        sim, name="fill", kind="trade_update", event="fill|partial_fill", client_order_id="-entry"
    )
    hook = sim.server.hooks.get("fill")
    async with sim.trade_updates() as updates:
        await sim.call(sim.trading.submit_order, buy(3, "f-entry"))
        await sim.step_minutes(2)
        await asyncio.wait_for(hook.wait_hit(), 10)
        events = await sim.drain_until(updates, lambda u: u.event == "fill")
    assert events[-1].order.client_order_id == "f-entry"
    assert hook.seen[0]["event"] == "fill" and hook.seen[0]["client_order_id"] == "f-entry"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "x", "when": "later"}, "when must be one of"),
        ({"name": "x", "path": "("}, "path is not a regular expression"),
        ({"name": "x", "faults": {"nope": 1}}, "unknown fault field: nope"),
        ({"name": "x", "hold_seconds": 600}, "hold_seconds must be between"),
        ({"kind": "request"}, "name must be a non-empty string"),
        ({"name": "x", "colour": "red"}, "unknown hook field: colour"),
    ],
)
async def test_a_bad_hook_is_refused_naming_the_field(sim, body, message) -> None:
    async with (
        aiohttp.ClientSession(sim.server.url) as http,
        http.post("/sim/hooks", json=body) as response,
    ):
        assert response.status == 422
        assert message in (await response.json())["message"]
