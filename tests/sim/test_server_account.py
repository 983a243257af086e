"""Account, clock, calendar, assets and auth through the real alpaca-py TradingClient."""

from __future__ import annotations

import asyncio
from datetime import date

import aiohttp
import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.requests import GetCalendarRequest

from magellan_sim.server.server import SimServer


async def test_account_clock_and_calendar_parse(sim) -> None:
    account = await sim.call(sim.trading.get_account)
    assert account.status == "ACTIVE"
    assert float(account.cash) == 100_000

    clock = await sim.call(sim.trading.get_clock)
    assert clock.is_open is False  # 09:25 New York, before the open
    assert clock.timestamp == sim.clock.now()
    assert clock.next_open == sim.session_open

    request = GetCalendarRequest(start=date(2024, 11, 25), end=date(2024, 12, 2))
    calendar = await sim.call(sim.trading.get_calendar, request)
    days = {day.date: day for day in calendar}
    assert date(2024, 11, 28) not in days  # Thanksgiving
    friday = days[date(2024, 11, 29)]
    assert (friday.open.hour, friday.open.minute) == (9, 30)
    assert (friday.close.hour, friday.close.minute) == (13, 0)
    assert (days[date(2024, 12, 2)].close.hour) == 16


async def test_asset_and_colon_route(sim) -> None:
    asset = await sim.call(sim.trading.get_asset, "GME")
    assert asset.symbol == "GME"
    with pytest.raises(APIError) as missing:
        await sim.call(sim.trading.get_order_by_client_id, "no-such-client-id")
    assert missing.value.status_code == 404
    assert missing.value.code == 40410000


async def test_sim_clock_and_faults_endpoints(sim) -> None:
    async with aiohttp.ClientSession(sim.server.url) as http:
        async with http.get("/sim/clock") as response:
            state = await response.json()
        assert state["speed"] == 0
        assert state["now"] == sim.clock.now().isoformat()
        async with http.post("/sim/clock", json={"advance_seconds": 60}) as response:
            assert response.status == 200
        assert sim.clock.now() == sim.session_open.replace(minute=26)
        async with http.post("/sim/clock", json={"set": "2020-01-01T00:00:00Z"}) as response:
            assert response.status == 422  # never backwards
        for bad in ({"speed": "NaN"}, {"speed": -1}, {"advance_seconds": "inf"}):
            async with http.post("/sim/clock", json=bad) as response:
                assert response.status == 422, bad
        assert sim.clock.speed == 0
        async with http.post("/sim/faults", json={"latency_ms": 1}) as response:
            assert (await response.json())["latency_ms"] == 1
        async with http.post("/sim/faults", json={"bogus": 1}) as response:
            assert response.status == 422
            assert "bogus" in (await response.json())["message"]
        async with http.get("/sim/faults") as response:
            assert (await response.json())["latency_ms"] == 1


async def test_configured_credentials_are_enforced(exchange) -> None:
    server = SimServer(exchange, port=0, key="right-key", secret="right-secret")
    await server.start()
    try:
        wrong = TradingClient("right-key", "wrong-secret", url_override=server.url)
        with pytest.raises(APIError) as refused:
            await asyncio.to_thread(wrong.get_account)
        assert refused.value.status_code == 401
        assert refused.value.code == 40110000
        right = TradingClient("right-key", "right-secret", url_override=server.url)
        assert (await asyncio.to_thread(right.get_account)).status == "ACTIVE"
    finally:
        await server.stop()
