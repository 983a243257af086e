"""The broker adapter's market-data reads (our own ``MarketDataReads``, not alpaca-py's data
clients) against the simulator over loopback: they give what alpaca-py's own clients read
from the same endpoints, page by page, and fail as classified broker errors. The daemon's
start never imports ``alpaca.data`` (nor pandas): a subprocess shows it."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import pytest_asyncio
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.requests import StockBarsRequest, StockLatestQuoteRequest
from alpaca.data.timeframe import TimeFrame

from magellan_daemon.adapters.alpaca import market_data_reads
from magellan_daemon.errors import BrokerFatal
from magellan_sim.server.server import SimServer
from tests.daemon.adapters.sim_at import KEY, SECRET, broker_at, sim_at

NOW = datetime(2024, 6, 10, 15, 0, tzinfo=UTC)  # 11:00 ET, a Monday
WEEK = (datetime(2024, 6, 3, tzinfo=UTC), datetime(2024, 6, 8, tzinfo=UTC))
SYMBOLS = ["AMC", "CGC", "GME", "MARA", "MULN", "PLUG", "RIOT", "SNDL", "TLRY", "WKHS"]


@pytest_asyncio.fixture
async def server(bars_dir: Path) -> AsyncIterator[SimServer]:
    async with sim_at(bars_dir, NOW) as sim:
        yield sim


async def test_bars_over_several_pages_are_the_ones_alpaca_py_reads(server: SimServer) -> None:
    start, end = WEEK
    ours = await broker_at(server).bars(SYMBOLS, "1Min", start, end)
    # alpaca-py's client blocks: it runs in a thread while the loop serves the simulator
    client = StockHistoricalDataClient(KEY, SECRET, url_override=server.url)
    theirs = await asyncio.to_thread(
        client.get_stock_bars,
        StockBarsRequest(
            symbol_or_symbols=SYMBOLS,
            timeframe=TimeFrame.Minute,
            start=start,
            end=end,
            feed="iex",
            adjustment="split",
        ),
    )
    total = sum(len(rows) for rows in ours.values())
    assert total > 3 * market_data_reads.BARS_PAGE  # the reply came in four pages
    assert sorted(ours) == sorted(theirs.data)  # MULN has no bars that week: absent in both
    for symbol, rows in ours.items():
        assert [(b.t, b.open, b.high, b.low, b.close, b.volume) for b in rows] == [
            (b.timestamp, b.open, b.high, b.low, b.close, b.volume) for b in theirs[symbol]
        ]


async def test_the_latest_quote_is_the_one_alpaca_py_reads(server: SimServer) -> None:
    quote = await broker_at(server).latest_quote("GME")
    client = StockHistoricalDataClient(KEY, SECRET, url_override=server.url)
    theirs = await asyncio.to_thread(
        client.get_stock_latest_quote,
        StockLatestQuoteRequest(symbol_or_symbols=["GME"], feed="iex"),
    )
    q = theirs["GME"]
    assert quote is not None
    assert (quote.bid, quote.ask, quote.bid_size, quote.ask_size) == (
        q.bid_price,
        q.ask_price,
        q.bid_size,
        q.ask_size,
    )
    assert await broker_at(server).latest_quote("NOSUCH") is None


async def test_a_refused_read_is_a_classified_broker_error(server: SimServer) -> None:
    with pytest.raises(BrokerFatal):  # 401/403 on the key: the account's, not one read's
        await broker_at(server, secret="wrong").bars(["GME"], "1Day", *WEEK)
    # the quote is a gate's input: unavailable means None (and a warning), never a raise
    assert await broker_at(server, secret="wrong").latest_quote("GME") is None


def test_the_daemon_starts_without_alpaca_py_data_or_pandas() -> None:
    probe = (
        "import sys, magellan_daemon.cli.run, magellan_daemon.node.modes; "
        "print(sorted(m for m in ('alpaca.data', 'pandas.core', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
