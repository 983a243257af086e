"""Our bar socket (``bar_socket.BarSocket`` under ``SupervisedStream``) against the simulator
over loopback: the handshake, every minute bar with the market's values, the same with the
simulator packing frames ahead (``--prepack-bars``), a reconnect after the server drops the
socket, a refused key, and bad frames dropped while the stream goes on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio

from magellan_core.clock import VirtualClock
from magellan_daemon.adapters.alpaca.stream import SupervisedStream, bar_stream
from magellan_daemon.adapters.bar_batch import BarBatch
from magellan_sim.exchange.exchange import Exchange
from magellan_sim.market.calendar import SessionCalendar
from magellan_sim.market.market import MarketData
from magellan_sim.server.server import SimServer

KEY, SECRET = "bars-key", "bars-secret"
SYMBOLS = ("GME", "PLUG")
OPEN = datetime(2024, 12, 10, 14, 30, tzinfo=UTC)  # a regular session's open
WAIT = 10.0  # wall seconds: a safety net only


@pytest_asyncio.fixture(params=[False, True], ids=["packed-at-boundary", "prepacked"])
async def server(request: pytest.FixtureRequest, bars_dir: Path) -> AsyncIterator[SimServer]:
    calendar = SessionCalendar()
    market = MarketData.from_dir(bars_dir, calendar)
    exchange = Exchange(VirtualClock(OPEN - timedelta(minutes=2), speed=0), market, calendar)
    sim = SimServer(exchange, port=0, key=KEY, secret=SECRET, prepack_bars=request.param)
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


class Client:
    """One supervised bar stream and what it handed on."""

    def __init__(self, server: SimServer, secret: str = SECRET) -> None:
        self.batches: list[BarBatch] = []
        self.connects = 0
        self.stream: SupervisedStream = bar_stream(
            account="main",
            key=KEY,
            secret=secret,
            feed="iex",
            url=server.data_ws_url("iex"),
            symbols=SYMBOLS,
            on_bars=self.batches.append,
            on_connected=self._connected,
        )

    def _connected(self) -> None:
        self.connects += 1

    async def until_rows(self, count: int) -> None:
        await _until(lambda: len(self.rows()) == count)

    def rows(self) -> list[tuple]:
        return sorted(
            (b.symbol, b.t, b.open, b.high, b.low, b.close, b.volume)
            for batch in self.batches
            for b in batch.bars()
        )


async def _until(done: Callable[[], bool]) -> None:
    async def poll() -> None:
        while not done():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), WAIT)


async def _minute(server: SimServer) -> list[tuple]:
    """Step the clock a minute; the rows of ``SYMBOLS`` the market publishes for it."""
    clock = server.exchange.clock
    boundary = clock.now() + timedelta(minutes=1)
    clock.set(boundary)  # type: ignore[attr-defined]
    await asyncio.wait_for(server.wait_processed(boundary), WAIT)
    bars = server.exchange.market.minute_bars_ending_at(boundary)
    return [
        (b.symbol, b.t, b.open, b.high, b.low, b.close, float(b.volume))
        for b in bars
        if b.symbol in SYMBOLS
    ]


async def test_bars_arrive_with_the_markets_values_and_after_a_reconnect(
    server: SimServer,
) -> None:
    client = Client(server)
    client.stream.start()
    try:
        await _until(lambda: client.connects == 1)
        assert client.stream.stats.connected
        expected: list[tuple] = []
        for _ in range(3):
            expected += await _minute(server)
            await client.until_rows(len(expected))
        assert expected and client.rows() == sorted(expected)

        assert await server.drop_streams() >= 1  # the server goes away: we connect again
        await _until(lambda: client.connects == 2)
        for _ in range(2):
            expected += await _minute(server)
            await client.until_rows(len(expected))
        assert client.rows() == sorted(expected)
        assert client.stream.stats.bad_frames == 0
    finally:
        await client.stream.stop()


async def test_bad_frames_are_dropped_and_counted_and_the_stream_goes_on(
    server: SimServer,
) -> None:
    client = Client(server)
    client.stream.start()
    try:
        await _until(lambda: client.connects == 1)
        # frames as the socket task hands them to the consumer: garbage, a map, a bad bar
        for frame in (b"\xc1", b"\x81\xa1T\xa1b", "text", b"\x91\x82\xa1T\xa1b\xa1S\xa3GME"):
            client.stream._queue.put_nowait(frame)
        expected = await _minute(server)
        await client.until_rows(len(expected))
        assert client.rows() == sorted(expected)
        assert client.stream.stats.bad_frames == 4
    finally:
        await client.stream.stop()


async def test_a_refused_key_never_connects_and_is_retried(server: SimServer) -> None:
    client = Client(server, secret="wrong")
    client.stream.start()
    try:
        await asyncio.sleep(1.5)
        assert client.connects == 0 and not client.stream.stats.connected
    finally:
        await client.stream.stop()
