"""Market data: historical bars through StockHistoricalDataClient and minute bars through
StockDataStream, compared with the CSV rows they come from."""

from __future__ import annotations

import asyncio
import gzip
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from alpaca.data.live import StockDataStream
from alpaca.data.requests import StockBarsRequest
from alpaca.data.timeframe import TimeFrame

SYMBOLS = ("GME", "PLUG")


def csv_rows(bars_dir: Path, symbol: str, start: datetime, end: datetime) -> list[tuple]:
    """(t, o, h, l, c, v) of the 1Min CSV rows with start <= t <= end."""
    rows = []
    with gzip.open(bars_dir / "1Min" / f"{symbol}.csv.gz", "rt") as lines:
        next(lines)
        for line in lines:
            stamp, o, h, low, c, v, *_ = line.strip().split(",")
            t = datetime.fromisoformat(stamp)
            if start <= t <= end:
                rows.append((t, float(o), float(h), float(low), float(c), int(v)))
    return rows


def as_row(bar) -> tuple:
    return (bar.timestamp, bar.open, bar.high, bar.low, bar.close, int(bar.volume))


async def test_historical_bars_paginate_and_equal_the_csv(sim, bars_dir: Path) -> None:
    start = datetime(2024, 12, 5, 14, 0, tzinfo=UTC)
    end = datetime(2024, 12, 6, 21, 0, tzinfo=UTC)
    expected = {s: csv_rows(bars_dir, s, start, end) for s in SYMBOLS}
    assert sum(map(len, expected.values())) > 1000  # more than one default page

    request = StockBarsRequest(
        symbol_or_symbols=list(SYMBOLS), timeframe=TimeFrame.Minute, start=start, end=end
    )
    got = await sim.call(sim.data.get_stock_bars, request)
    for symbol in SYMBOLS:
        assert [as_row(bar) for bar in got.data[symbol]] == expected[symbol]

    # the raw pages: a small limit takes many pages, each carrying the next token
    collected: dict[str, list] = {s: [] for s in SYMBOLS}
    pages = 0
    params = {
        "symbols": ",".join(SYMBOLS),
        "timeframe": "1Min",
        "limit": "500",
        "start": start.isoformat(),
        "end": end.isoformat(),
    }
    async with aiohttp.ClientSession(sim.server.url) as http:
        while True:
            async with http.get("/v2/stocks/bars", params=params) as response:
                assert response.status == 200
                page = await response.json()
            pages += 1
            for symbol, bars in page["bars"].items():
                assert len(bars) <= 500
                collected[symbol] += [b["t"] for b in bars]
            if page["next_page_token"] is None:
                break
            params["page_token"] = page["next_page_token"]
    assert pages >= 3
    for symbol in SYMBOLS:
        assert len(collected[symbol]) == len(expected[symbol])


async def test_no_bar_from_the_future(sim) -> None:
    request = StockBarsRequest(
        symbol_or_symbols="GME",
        timeframe=TimeFrame.Minute,
        start=sim.clock.now() - timedelta(minutes=30),
        end=sim.clock.now() + timedelta(hours=2),
    )
    got = await sim.call(sim.data.get_stock_bars, request)
    assert got.data["GME"]
    assert all(bar.timestamp + timedelta(minutes=1) <= sim.clock.now() for bar in got.data["GME"])


async def test_stream_sends_each_minute_bar_with_csv_values(sim, bars_dir: Path) -> None:
    received: asyncio.Queue = asyncio.Queue()

    async def on_bar(bar) -> None:
        received.put_nowait(bar)

    stream = StockDataStream("key", "secret", url_override=sim.server.data_ws_url("iex"))
    stream.subscribe_bars(on_bar, *SYMBOLS)
    task = asyncio.create_task(stream._run_forever())
    try:
        for symbol in SYMBOLS:
            await asyncio.wait_for(sim.server.wait_bar_subscribers(symbol), 10)
        first = sim.clock.now()  # 14:25Z, pre-market: not every minute traded
        last = sim.session_open + timedelta(minutes=3)
        expected = {s: csv_rows(bars_dir, s, first, last) for s in SYMBOLS}
        got: dict[str, list] = {s: [] for s in SYMBOLS}
        minute = first
        while minute <= last:
            await sim.step_to(minute + timedelta(minutes=1))  # the boundary completing it
            traded = [s for s in SYMBOLS if any(row[0] == minute for row in expected[s])]
            for _ in traded:
                bar = await sim.next_item(received)
                assert bar.timestamp == minute  # never before the boundary that completes it
                got[bar.symbol].append(as_row(bar))
            minute += timedelta(minutes=1)
        assert got == expected
        assert received.empty()
    finally:
        await sim.stop_stream(stream, task)


@pytest.mark.parametrize("feed", ["iex", "sip"])
async def test_second_data_connection_with_same_key_gets_406(sim, feed: str) -> None:
    import msgpack

    async with aiohttp.ClientSession() as http:
        first = await http.ws_connect(sim.server.data_ws_url("iex"))
        second = await http.ws_connect(sim.server.data_ws_url(feed))
        for ws in (first, second):
            assert msgpack.unpackb(await ws.receive_bytes()) == [
                {"T": "success", "msg": "connected"}
            ]
        await first.send_bytes(msgpack.packb({"action": "auth", "key": "k", "secret": "s"}))
        assert msgpack.unpackb(await first.receive_bytes())[0]["msg"] == "authenticated"
        await second.send_bytes(msgpack.packb({"action": "auth", "key": "k", "secret": "s"}))
        refused = msgpack.unpackb(await second.receive_bytes())
        assert refused == [{"T": "error", "code": 406, "msg": "connection limit exceeded"}]
        await first.close()
        await second.close()


async def test_single_symbol_bars_page_like_the_multi_symbol_endpoint(sim) -> None:
    params = {
        "timeframe": "1Min",
        "limit": "7",
        "start": "2024-12-09T14:30:00Z",
        "end": "2024-12-09T15:00:00Z",
        "feed": "iex",
    }
    single_pages, multi_pages = [], []
    async with aiohttp.ClientSession(sim.server.url) as http:
        for path, extra, pages in (
            ("/v2/stocks/GME/bars", {}, single_pages),
            ("/v2/stocks/bars", {"symbols": "GME"}, multi_pages),
        ):
            query = {**params, **extra}
            while True:
                async with http.get(path, params=query) as response:
                    assert response.status == 200
                    pages.append(await response.json())
                if pages[-1]["next_page_token"] is None:
                    break
                query["page_token"] = pages[-1]["next_page_token"]
        async with http.get("/v2/stocks/ZZZZ/bars", params=params) as response:
            empty = await response.json()
        async with http.get("/v2/stocks/bars/latest", params={"symbols": "GME"}) as response:
            latest = await response.json()  # the {symbol}/bars route does not shadow it
    assert len(single_pages) == 5  # 31 minutes, 7 a page
    for single, multi in zip(single_pages, multi_pages, strict=True):
        assert set(single) == {"bars", "symbol", "next_page_token"}
        assert single["symbol"] == "GME"
        assert single["bars"] == multi["bars"]["GME"]
        assert single["next_page_token"] == multi["next_page_token"]
    assert empty == {"bars": [], "symbol": "ZZZZ", "next_page_token": None}
    assert set(latest["bars"]) == {"GME"}
