"""Bad input of every kind gets a 4xx (or an error frame) and the server keeps serving."""

from __future__ import annotations

import json
import random

import aiohttp
import msgpack
import orjson
import pytest

HEADERS = {"APCA-API-KEY-ID": "fuzz", "APCA-API-SECRET-KEY": "fuzz"}
ORDER = {"symbol": "GME", "qty": 1, "side": "buy", "type": "market", "time_in_force": "day"}

BAD_BODIES = [
    b"{not json",
    b"[1, 2, 3]",
    b'"just a string"',
    b'{"qty": NaN, "symbol": "GME"}',
    b'{"qty": Infinity}',
    b"\xff\xfe\x00garbage",
    json.dumps({**ORDER, "qty": "abc"}).encode(),
    json.dumps({**ORDER, "qty": True}).encode(),
    json.dumps({**ORDER, "qty": "NaN"}).encode(),
    json.dumps({**ORDER, "qty": "-Infinity"}).encode(),
    json.dumps({**ORDER, "qty": -5}).encode(),
    json.dumps({**ORDER, "qty": [1]}).encode(),
    json.dumps({**ORDER, "symbol": 5}).encode(),
    json.dumps({**ORDER, "side": "up"}).encode(),
    json.dumps({**ORDER, "type": {"nested": 1}}).encode(),
    json.dumps({**ORDER, "time_in_force": None}).encode(),
    json.dumps({**ORDER, "limit_price": "1e999999999", "type": "limit"}).encode(),
    b'{"symbol":"GME","qty":1e400,"side":"buy","type":"market","time_in_force":"day"}',
    b'{"symbol":"GME","qty":' + b"9" * 5000 + b',"side":"buy","type":"market"}',
    json.dumps({**ORDER, "order_class": "bracket"}).encode(),
    json.dumps({**ORDER, "extended_hours": "maybe"}).encode(),
    json.dumps({**ORDER, "client_order_id": "x" * 500}).encode(),
]

BAD_QUERIES = [
    ("GET", "/v2/orders?limit=abc"),
    ("GET", "/v2/orders?limit=100000000000000000000000"),
    ("GET", "/v2/orders?status=sideways"),
    ("GET", "/v2/orders?after=yesterday"),
    ("GET", "/v2/orders?nested=perhaps"),
    ("GET", "/v2/orders/not-a-uuid"),
    ("GET", "/v2/orders:by_client_order_id"),
    ("GET", "/v2/calendar?start=2024-13-45"),
    ("GET", "/v2/positions/NOPE"),
    ("DELETE", "/v2/positions/GME?percentage=NaN"),
    ("DELETE", "/v2/positions/GME?qty=1&percentage=5"),
    ("DELETE", "/v2/orders/00000000-0000-0000-0000-000000000000"),
    ("GET", "/v2/stocks/bars?symbols=GME&timeframe=7Years"),
    ("GET", "/v2/stocks/bars?symbols=GME&timeframe=1Min&start=garbage"),
    ("GET", "/v2/stocks/bars?symbols=GME&timeframe=1Min&page_token=%%%"),
    ("GET", "/v2/stocks/bars?timeframe=1Min"),
    ("GET", "/v2/stocks/bars?symbols=GME&timeframe=1Min&feed=nasdaq"),
    ("GET", "/v2/stocks/trades/latest"),
    ("GET", "/v2/account/activities?page_size=-1"),
    ("GET", "/v2/nowhere"),
    ("PUT", "/v2/account"),
]


async def assert_still_serving(http: aiohttp.ClientSession) -> None:
    async with http.get("/v2/account", headers=HEADERS) as response:
        assert response.status == 200
        assert (await response.json())["status"] == "ACTIVE"


async def test_bad_rest_requests_get_4xx_json(sim) -> None:
    async with aiohttp.ClientSession(sim.server.url) as http:
        for body in BAD_BODIES:
            for method, path in (("POST", "/v2/orders"), ("PATCH", "/v2/orders/abc")):
                async with http.request(method, path, data=body, headers=HEADERS) as response:
                    assert 400 <= response.status < 500, (method, body[:60], response.status)
                    payload = await response.json()
                    assert isinstance(payload["message"], str)
        for method, path in BAD_QUERIES:
            async with http.request(method, path, headers=HEADERS) as response:
                assert 400 <= response.status < 500, (method, path, response.status)
                assert "message" in await response.json()
        await assert_still_serving(http)


async def test_unknown_order_fields_are_ignored(sim) -> None:
    await sim.step_to(sim.session_open)
    body = {**ORDER, "qty": "2", "favourite_colour": "green", "subtag": None}
    async with (
        aiohttp.ClientSession(sim.server.url) as http,
        http.post("/v2/orders", json=body, headers=HEADERS) as response,
    ):
        assert response.status == 200
        assert (await response.json())["qty"] == "2"


FIELDS = [
    "symbol",
    "qty",
    "notional",
    "side",
    "type",
    "time_in_force",
    "limit_price",
    "stop_price",
    "client_order_id",
    "extended_hours",
    "order_class",
    "take_profit",
]
VALUES = [
    None,
    True,
    False,
    0,
    -1,
    7,
    10**20,
    1.5,
    -0.0,
    1e308,
    "",
    "GME",
    "gme",
    "buy",
    "sell",
    "limit",
    "market",
    "stop",
    "day",
    "gtc",
    "opg",
    "ioc",
    "1e9",
    "0.0000000001",
    "NaN",
    "12",
    [1],
    {"limit_price": 1},
    "\u0000",
    "x" * 300,
]


@pytest.mark.rate_limit(0)
async def test_random_order_bodies_never_5xx(sim) -> None:
    rng = random.Random(20241210)  # deterministic: the same 300 bodies every run
    await sim.step_to(sim.session_open)
    async with aiohttp.ClientSession(sim.server.url) as http:
        for _ in range(300):
            body = {f: rng.choice(VALUES) for f in rng.sample(FIELDS, rng.randint(0, 9))}
            if rng.random() < 0.5:
                body = {**ORDER, **body}
            async with http.post("/v2/orders", json=body, headers=HEADERS) as response:
                assert response.status < 500, body
        await assert_still_serving(http)


async def test_garbage_trade_stream_frames(sim) -> None:
    async with aiohttp.ClientSession(sim.server.url) as http:
        async with http.ws_connect("/stream") as ws:
            for frame in ("not json", "[1,2]", '{"action": 5}', '{"action":"dance"}'):
                await ws.send_str(frame)
                reply = orjson.loads((await ws.receive()).data)
                assert reply["stream"] == "error"
            await ws.send_bytes(b"\x00\xff\xfe")
            assert orjson.loads((await ws.receive()).data)["stream"] == "error"
            await ws.send_str('{"action":"listen","data":{"streams":["trade_updates"]}}')
            reply = orjson.loads((await ws.receive()).data)
            assert reply["data"] == {"action": "listen", "status": "unauthorized"}
            auth = {"action": "authenticate", "data": {"key_id": "k", "secret_key": "s"}}
            await ws.send_bytes(orjson.dumps(auth))
            reply = orjson.loads((await ws.receive()).data)
            assert reply == {
                "stream": "authorization",
                "data": {"action": "authenticate", "status": "authorized"},
            }
        await assert_still_serving(http)


async def test_garbage_data_stream_frames(sim) -> None:
    async with aiohttp.ClientSession(sim.server.url) as http:
        async with http.ws_connect("/v2/iex") as ws:
            assert msgpack.unpackb(await ws.receive_bytes())[0]["msg"] == "connected"
            subscribe = msgpack.packb({"action": "subscribe", "bars": ["GME"]})
            await ws.send_bytes(subscribe)
            assert msgpack.unpackb(await ws.receive_bytes()) == [
                {"T": "error", "code": 401, "msg": "not authenticated"}
            ]
            await ws.send_bytes(msgpack.packb({"action": "auth", "key": "k", "secret": "s"}))
            assert msgpack.unpackb(await ws.receive_bytes())[0]["msg"] == "authenticated"
            garbage = [
                b"\xc1",
                msgpack.packb([1, 2, 3]),
                msgpack.packb({"action": "subscribe", "bars": "GME"}),
                msgpack.packb({"action": "subscribe", "bars": [1, 2]}),
                msgpack.packb({1: 2}),
                b"",
            ]
            for frame in garbage:
                await ws.send_bytes(frame)
                assert msgpack.unpackb(await ws.receive_bytes()) == [
                    {"T": "error", "code": 400, "msg": "invalid syntax"}
                ]
            await ws.send_str("{{{{ not json")
            assert msgpack.unpackb(await ws.receive_bytes())[0]["code"] == 400
            await ws.send_bytes(subscribe)
            reply = msgpack.unpackb(await ws.receive_bytes())[0]
            assert reply["T"] == "subscription"
            assert reply["bars"] == ["GME"]
        await assert_still_serving(http)
