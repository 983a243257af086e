"""Fixtures for the simulator server tests: a real server on a free loopback port, driven by
the real alpaca-py clients, on the real bars with a stepped (speed 0) virtual clock."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.trading.client import TradingClient
from alpaca.trading.stream import TradingStream

from magellan_core.clock import VirtualClock
from magellan_sim.exchange.exchange import Exchange
from magellan_sim.market.calendar import SessionCalendar
from magellan_sim.market.market import MarketData
from magellan_sim.server.server import SimServer

KEY = "test-key"
SECRET = "test-secret"
# 2024-12-10 is a regular EST session: it opens 14:30Z. The tests start five minutes before.
SESSION_OPEN = datetime(2024, 12, 10, 14, 30, tzinfo=UTC)
START = SESSION_OPEN - timedelta(minutes=5)
EVENT_TIMEOUT = 10.0  # wall seconds: only a safety net, nothing waits this long when it works


@pytest.fixture(scope="session")
def market(bars_dir: Path) -> MarketData:
    """The real bars, loaded lazily once for the whole session (queries never mutate it)."""
    return MarketData.from_dir(bars_dir, SessionCalendar())


@pytest.fixture
def clock() -> VirtualClock:
    """A stepped clock five minutes before the 2024-12-10 open."""
    return VirtualClock(START, speed=0)


@pytest.fixture
def exchange(clock: VirtualClock, market: MarketData, request: pytest.FixtureRequest) -> Exchange:
    """A fresh exchange (accounts start with $100k) on the shared market data, with the
    strict defaults; a test marked ``@pytest.mark.exchange(**options)`` gets those options
    (e.g. ``wash_trade_check=False``)."""
    marker = request.node.get_closest_marker("exchange")
    return Exchange(clock, market, market.calendar, **(marker.kwargs if marker else {}))


@pytest.fixture
async def server(exchange: Exchange, request: pytest.FixtureRequest) -> AsyncIterator[SimServer]:
    """The simulator on a free loopback port, stopped after the test; a test marked
    ``@pytest.mark.rate_limit(N)`` gets that limit instead of Alpaca's 200."""
    marker = request.node.get_closest_marker("rate_limit")
    sim = SimServer(exchange, port=0, rate_limit=marker.args[0] if marker else 200)
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


class Harness:
    """One test's simulator plus the real alpaca-py clients and the waiting helpers."""

    key = KEY
    secret = SECRET
    session_open = SESSION_OPEN

    def __init__(self, server: SimServer, clock: VirtualClock) -> None:
        self.server = server
        self.clock = clock
        self.exchange = server.exchange
        self.trading = TradingClient(KEY, SECRET, url_override=server.url)
        self.data = StockHistoricalDataClient(KEY, SECRET, url_override=server.url)

    @staticmethod
    async def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a blocking alpaca-py call off the loop (the server runs on this loop)."""
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def step_to(self, when: datetime) -> None:
        """Move the virtual clock to ``when``; wait until the publisher has processed it."""
        self.clock.set(when)
        await asyncio.wait_for(self.server.wait_processed(when), EVENT_TIMEOUT)

    async def step_minutes(self, minutes: int) -> None:
        """Advance the clock minute by minute, letting the publisher process each one."""
        for _ in range(minutes):
            await self.step_to(self.clock.now() + timedelta(minutes=1))

    async def set_faults(self, **faults: Any) -> dict[str, Any]:
        """POST /sim/faults as a test client would; returns the settings it answers."""
        async with (
            aiohttp.ClientSession(self.server.url) as http,
            http.post("/sim/faults", json=faults) as response,
        ):
            assert response.status == 200, await response.text()
            return await response.json()

    @staticmethod
    async def next_item(queue: asyncio.Queue[Any]) -> Any:
        """The next item a stream handler queued (a missing event fails, never hangs)."""
        return await asyncio.wait_for(queue.get(), EVENT_TIMEOUT)

    async def drain_until(self, queue: asyncio.Queue[Any], done: Callable[[Any], bool]) -> list:
        """Queued items up to and including the first one for which ``done`` holds."""
        items = []
        while True:
            item = await self.next_item(queue)
            items.append(item)
            if done(item):
                return items

    @contextlib.asynccontextmanager
    async def trade_updates(self) -> AsyncIterator[asyncio.Queue[Any]]:
        """A running alpaca-py TradingStream whose updates land in the yielded queue."""
        updates: asyncio.Queue[Any] = asyncio.Queue()

        async def on_update(update: Any) -> None:
            updates.put_nowait(update)

        stream = TradingStream(KEY, SECRET, url_override=self.server.trading_ws_url)
        stream.subscribe_trade_updates(on_update)
        task = asyncio.create_task(stream._run_forever())
        try:
            await asyncio.wait_for(self.server.wait_trade_listeners(KEY), EVENT_TIMEOUT)
            yield updates
        finally:
            await self.stop_stream(stream, task)

    async def stop_stream(self, stream: Any, task: asyncio.Task[Any]) -> None:
        """Stop an alpaca-py stream now: ``stop_ws`` alone waits out its 5 s receive poll,
        so the server closes the socket as well."""
        await stream.stop_ws()
        await self.server.drop_streams()
        await asyncio.wait_for(task, EVENT_TIMEOUT)


@pytest.fixture
def sim(server: SimServer, clock: VirtualClock) -> Harness:
    """The harness every server test uses."""
    return Harness(server, clock)


def pytest_configure(config: pytest.Config) -> None:
    """Register this directory's marker."""
    config.addinivalue_line("markers", "rate_limit(n): start the simulator with this limit")
    config.addinivalue_line("markers", "exchange(**options): Exchange constructor options")
