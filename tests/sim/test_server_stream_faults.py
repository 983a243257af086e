"""The faults for the next issues, each seen by the unmodified alpaca-py clients: trade-update
frames duplicated, reordered, dropped or withheld, silent sockets, one kind of stream
dropped, replies lost after the work was done, and cancels, replaces and orders refused."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import msgpack
import orjson
import pytest
from alpaca.common.exceptions import APIError
from alpaca.data.live import StockDataStream
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest, ReplaceOrderRequest

from magellan_sim.exchange.faults import Faults
from magellan_sim.server.streamfaults import Fate, StreamFaults

MINUTE = timedelta(minutes=1)
SECOND = timedelta(seconds=1)


def resting_buy(client_order_id: str | None = None) -> LimitOrderRequest:
    """A GME buy far below the market: one ``new`` event, then it rests."""
    return LimitOrderRequest(
        symbol="GME",
        qty=1,
        side=OrderSide.BUY,
        time_in_force=TimeInForce.DAY,
        limit_price=1.00,
        client_order_id=client_order_id,
    )


def market_buy() -> MarketOrderRequest:
    return MarketOrderRequest(
        symbol="GME", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY
    )


async def events_until(sim, updates, order_id: str) -> list[tuple[str, str]]:
    """(event, order id) of everything received up to the first event of ``order_id``."""
    items = await sim.drain_until(updates, lambda u: str(u.order.id) == order_id)
    return [(u.event, str(u.order.id)) for u in items]


async def marker(sim, updates) -> list[tuple[str, str]]:
    """Submit a fresh resting order and return what arrived up to its ``new``: whatever was
    going to arrive before it has."""
    order = await sim.call(sim.trading.submit_order, resting_buy())
    return await events_until(sim, updates, str(order.id))


@contextlib.asynccontextmanager
async def raw_socket(sim, path: str) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    """A bare websocket (no autoping, so a PONG is visible) to the simulator."""
    url = sim.server.url.replace("http://", "ws://", 1) + path
    async with aiohttp.ClientSession() as http, http.ws_connect(url, autoping=False) as ws:
        yield ws


async def receive(ws: aiohttp.ClientWebSocketResponse) -> aiohttp.WSMessage:
    return await asyncio.wait_for(ws.receive(), 10)


async def listening_trade_socket(sim, ws: aiohttp.ClientWebSocketResponse) -> None:
    auth = {"action": "authenticate", "data": {"key_id": sim.key, "secret_key": sim.secret}}
    await ws.send_str(orjson.dumps(auth).decode())
    assert orjson.loads((await receive(ws)).data)["data"]["status"] == "authorized"
    await ws.send_str('{"action": "listen", "data": {"streams": ["trade_updates"]}}')
    assert orjson.loads((await receive(ws)).data)["stream"] == "listening"


async def assert_pong(ws: aiohttp.ClientWebSocketResponse) -> None:
    """A silent socket still answers pings, and sends nothing else before the pong."""
    await ws.ping(b"alive?")
    answer = await receive(ws)
    assert (answer.type, answer.data) == (aiohttp.WSMsgType.PONG, b"alive?")


async def test_duplicated_trade_updates(sim) -> None:
    async with sim.trade_updates() as updates:
        await sim.step_to(sim.session_open)
        await sim.set_faults(trade_duplicate_rate=1.0)
        order = await sim.call(sim.trading.submit_order, resting_buy())
        twice = [await sim.next_item(updates) for _ in range(2)]
        assert [(u.event, u.order.id) for u in twice] == [("new", order.id)] * 2
        await sim.set_faults(trade_duplicate_rate=0.0)
        assert len(await marker(sim, updates)) == 1


async def test_reordered_trade_updates(sim) -> None:
    async with sim.trade_updates() as updates:
        await sim.step_to(sim.session_open)
        await sim.set_faults(trade_reorder_rate=1.0)
        first = await sim.call(sim.trading.submit_order, resting_buy())  # held back
        await sim.set_faults(trade_reorder_rate=0.0)
        second = await sim.call(sim.trading.submit_order, resting_buy())
        got = [(u.event, u.order.id) for u in [await sim.next_item(updates) for _ in range(2)]]
        assert got == [("new", second.id), ("new", first.id)]  # after the next frame
        assert len(await marker(sim, updates)) == 1


async def test_dropped_trade_updates_leave_rest_unaffected(sim) -> None:
    async with sim.trade_updates() as updates:
        await sim.step_to(sim.session_open)
        await sim.set_faults(trade_drop_rate=1.0)
        lost = await sim.call(sim.trading.submit_order, resting_buy())
        await sim.set_faults(trade_drop_rate=0.0)
        assert len(await marker(sim, updates)) == 1  # the marker's new came first
        assert (await sim.call(sim.trading.get_order_by_id, lost.id)).status == "new"


async def test_withheld_fill_events_are_right_at_rest(sim) -> None:
    async with sim.trade_updates() as updates:
        await sim.step_to(sim.session_open)
        await sim.set_faults(drop_next_fill_events=1)
        order = await sim.call(sim.trading.submit_order, market_buy())
        await sim.step_to(sim.session_open + MINUTE)  # it fills at the 14:30 open
        seen = await marker(sim, updates)
        assert seen[0] == ("new", str(order.id))
        assert "fill" not in [event for event, _ in seen]
        filled = await sim.call(sim.trading.get_order_by_id, order.id)
        assert (filled.status, float(filled.filled_qty)) == ("filled", 1)
        fills = await sim.call(sim.trading.get, "/account/activities/FILL")
        assert [f["order_id"] for f in fills] == [str(order.id)]
        assert (await sim.set_faults())["drop_next_fill_events"] == 0
        again = await sim.call(sim.trading.submit_order, market_buy())
        await sim.step_to(sim.session_open + 2 * MINUTE)
        events = await sim.drain_until(updates, lambda u: u.event == "fill")
        assert events[-1].order.id == again.id


async def test_a_silent_trade_socket_stays_open_answers_pings_and_sends_nothing(sim) -> None:
    async with sim.trade_updates() as updates, raw_socket(sim, "/stream") as ws:
        await listening_trade_socket(sim, ws)
        await sim.step_to(sim.session_open)
        await sim.set_faults(silent_trade_seconds=30)
        lost = await sim.call(sim.trading.submit_order, resting_buy())
        await assert_pong(ws)
        await sim.step_to(sim.session_open + 30 * SECOND)  # the window is over
        seen = await marker(sim, updates)
        assert len(seen) == 1 and seen[0][1] != str(lost.id)
        frame = orjson.loads((await receive(ws)).data)
        assert frame["data"]["order"]["id"] == seen[0][1]


async def test_a_silent_data_socket_loses_the_bars_of_its_window(sim) -> None:
    received: asyncio.Queue[Any] = asyncio.Queue()

    async def on_bar(bar: Any) -> None:
        received.put_nowait(bar)

    await sim.step_to(sim.session_open)  # before subscribing: no pre-market bar queued
    stream = StockDataStream("data-key", "secret", url_override=sim.server.data_ws_url())
    stream.subscribe_bars(on_bar, "GME")
    task = asyncio.create_task(stream._run_forever())
    try:
        async with raw_socket(sim, "/v2/sip") as ws:
            assert msgpack.unpackb((await receive(ws)).data)[0]["msg"] == "connected"
            await ws.send_bytes(msgpack.packb({"action": "auth", "key": "other", "secret": "s"}))
            assert msgpack.unpackb((await receive(ws)).data)[0]["msg"] == "authenticated"
            await sim.server.wait_bar_subscribers("GME")
            await sim.set_faults(silent_data_seconds=90)  # until 14:31:30
            await sim.step_to(sim.session_open + MINUTE)  # the 14:30 bar: lost
            await assert_pong(ws)
            await sim.step_to(sim.session_open + 2 * MINUTE)  # the 14:31 bar: sent
            bar = await sim.next_item(received)
            assert bar.timestamp == sim.session_open + MINUTE
            assert received.empty()
    finally:
        await sim.stop_stream(stream, task)


async def test_dropping_only_the_trade_streams_keeps_the_data_stream(sim) -> None:
    async with sim.trade_updates() as updates, raw_socket(sim, "/v2/iex") as data:
        assert msgpack.unpackb((await receive(data)).data)[0]["msg"] == "connected"
        after = await sim.set_faults(drop_trade_streams=True)
        assert after["drop_trade_streams"] is False  # applied once, then reset
        assert not data.closed
        await assert_pong(data)
        await sim.server.wait_trade_listeners(sim.key)  # alpaca-py reconnected by itself
        await sim.step_to(sim.session_open)
        assert len(await marker(sim, updates)) == 1


async def test_dropping_only_the_data_streams_keeps_the_trade_stream(sim) -> None:
    received: asyncio.Queue[Any] = asyncio.Queue()

    async def on_bar(bar: Any) -> None:
        received.put_nowait(bar)

    await sim.step_to(sim.session_open)  # before subscribing: no pre-market bar queued
    stream = StockDataStream(sim.key, sim.secret, url_override=sim.server.data_ws_url())
    stream.subscribe_bars(on_bar, "GME")
    task = asyncio.create_task(stream._run_forever())
    try:
        async with sim.trade_updates() as updates:
            await sim.server.wait_bar_subscribers("GME")
            await sim.set_faults(drop_data_streams=True)
            assert sim.server._hub.bar_subscribers("GME") == 0
            assert sim.server._hub.trade_listeners(sim.key) == 1  # never dropped
            assert len(await marker(sim, updates)) == 1
            await sim.server.wait_bar_subscribers("GME")  # alpaca-py reconnected by itself
            await sim.step_to(sim.session_open + MINUTE)
            assert (await sim.next_item(received)).timestamp == sim.session_open
    finally:
        await sim.stop_stream(stream, task)


async def test_a_reply_lost_after_the_order_was_accepted(sim) -> None:
    async with sim.trade_updates() as updates:
        await sim.step_to(sim.session_open)
        await sim.set_faults(http_error_after_rate=1.0, http_status=503)
        with pytest.raises(APIError) as lost:
            await sim.call(sim.trading.submit_order, resting_buy("answer-lost"))
        assert lost.value.status_code == 503
        await sim.set_faults(http_error_after_rate=0.0)
        order = await sim.call(sim.trading.get_order_by_client_id, "answer-lost")
        assert order.status == "new"
        assert (await sim.next_item(updates)).order.id == order.id


async def test_a_refused_cancel_is_accepted_then_rejected(sim) -> None:
    async with sim.trade_updates() as updates:
        await sim.step_to(sim.session_open)
        order = await sim.call(sim.trading.submit_order, resting_buy())
        await sim.set_faults(refuse_next_cancels=1)
        assert await sim.call(sim.trading.cancel_order_by_id, order.id) is None  # 204
        await sim.step_to(sim.session_open + 2 * SECOND)
        events = await sim.drain_until(updates, lambda u: u.event == "order_cancel_rejected")
        assert [u.event for u in events] == ["new", "pending_cancel", "order_cancel_rejected"]
        assert events[-1].order.status == "new"
        assert (await sim.call(sim.trading.get_order_by_id, order.id)).status == "new"


async def test_a_refused_replace_is_accepted_then_rejected(sim) -> None:
    async with sim.trade_updates() as updates:
        await sim.step_to(sim.session_open)
        old = await sim.call(sim.trading.submit_order, resting_buy())
        await sim.set_faults(refuse_next_replaces=1)
        new = await sim.call(
            sim.trading.replace_order_by_id, old.id, ReplaceOrderRequest(limit_price=1.5)
        )
        assert new.status == "pending_new"
        await sim.step_to(sim.session_open + 2 * SECOND)
        events = await sim.drain_until(updates, lambda u: u.event == "rejected")
        assert [(u.event, u.order.id) for u in events] == [
            ("new", old.id),
            ("pending_replace", old.id),
            ("order_replace_rejected", old.id),
            ("rejected", new.id),
        ]
        assert events[2].order.status == "new"
        assert (await sim.call(sim.trading.get_order_by_id, old.id)).status == "new"
        assert (await sim.call(sim.trading.get_order_by_id, new.id)).status == "rejected"


async def test_refused_orders_are_403_and_leave_nothing(sim) -> None:
    await sim.step_to(sim.session_open)
    await sim.set_faults(refuse_next_orders=1)
    with pytest.raises(APIError) as refused:
        await sim.call(sim.trading.submit_order, resting_buy("refused-once"))
    assert (refused.value.status_code, refused.value.code) == (403, 40310000)
    assert refused.value.message == "insufficient buying power"
    assert await sim.call(sim.trading.get_orders) == []
    accepted = await sim.call(sim.trading.submit_order, resting_buy("refused-once"))
    assert accepted.client_order_id == "refused-once"  # the id was not used up


@pytest.mark.parametrize(
    "bad",
    [
        {"trade_drop_rate": 1.5},
        {"trade_duplicate_rate": True},
        {"http_error_after_rate": -0.1},
        {"silent_trade_seconds": -1},
        {"silent_data_seconds": "10"},
        {"drop_trade_streams": 1},
        {"refuse_next_orders": 1.5},
        {"drop_next_fill_events": -1},
    ],
)
async def test_fault_fields_are_validated(sim, bad: dict) -> None:
    async with (
        aiohttp.ClientSession(sim.server.url) as http,
        http.post("/sim/faults", json={**bad, "refuse_next_cancels": 3}) as response,
    ):
        assert response.status == 422
        assert next(iter(bad)) in (await response.json())["message"]
    assert sim.exchange.faults.refuse_next_cancels == 0  # nothing changed


def test_stream_fault_decisions_follow_the_seed() -> None:
    now = datetime(2024, 12, 10, 15, 0, tzinfo=UTC)

    def fates(seed: int) -> list[Fate]:
        faults = Faults(seed=seed, trade_drop_rate=0.3, trade_duplicate_rate=0.3)
        decide = StreamFaults(faults, lambda: now)
        return [decide.fate(can_hold=True) for _ in range(40)]

    assert fates(7) == fates(7)
    assert fates(7) != fates(8)
    assert {Fate.DROP, Fate.TWICE, Fate.SEND} == set(fates(7))
