"""Bar store queries never look ahead; REST market-data shapes and pagination."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from magellan_core.clock import VirtualClock
from magellan_sim.errors import SimError
from magellan_sim.exchange.exchange import Exchange
from magellan_sim.exchange.faults import Faults
from magellan_sim.market.market import MarketData

NOW = datetime(2024, 12, 10, 14, 31, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def real_market(bars_dir: Path) -> MarketData:
    """The shared real bars (loaded lazily)."""
    return MarketData.from_dir(bars_dir)


def test_minute_queries_return_completed_bars_only(real_market: MarketData) -> None:
    latest = real_market.latest_bar("AMC", NOW)
    assert latest is not None
    assert latest.t == datetime(2024, 12, 10, 14, 30, tzinfo=UTC)  # 14:31 is still forming
    assert (latest.open, latest.close, latest.volume) == (4.53, 4.4873, 368784)
    bars = real_market.bars("AMC", "1Min", NOW - timedelta(minutes=3, seconds=30), None, NOW)
    assert [b.t.minute for b in bars] == [28, 29, 30]
    at_boundary = real_market.bars("AMC", "1Min", NOW, NOW + timedelta(hours=1), NOW)
    assert at_boundary == []
    published = real_market.minute_bars_ending_at(datetime(2024, 12, 10, 14, 31, tzinfo=UTC))
    amc = next(b for b in published if b.symbol == "AMC")
    assert amc == latest
    assert all(b.t == latest.t for b in published)


def test_daily_and_hourly_bars_complete_at_their_end(real_market: MarketData) -> None:
    day_start = datetime(2024, 12, 10, 5, 0, tzinfo=UTC)  # 00:00 New York
    before_close = datetime(2024, 12, 10, 20, 59, tzinfo=UTC)
    after_close = datetime(2024, 12, 10, 21, 0, tzinfo=UTC)
    assert real_market.bars("SPY", "1Day", day_start, None, before_close) == []
    assert [b.t for b in real_market.bars("SPY", "1Day", day_start, None, after_close)] == [
        day_start
    ]
    hour = datetime(2024, 12, 10, 15, 0, tzinfo=UTC)
    assert real_market.bars("NVDA", "1Hour", hour, hour, hour + timedelta(minutes=59)) == []
    assert len(real_market.bars("NVDA", "1Hour", hour, hour, hour + timedelta(hours=1))) == 1


def _exchange(market: MarketData, now: datetime) -> Exchange:
    return Exchange(VirtualClock(now), market, market.calendar)


def test_rest_bars_paginate_across_symbols(real_market: MarketData) -> None:
    exchange = _exchange(real_market, NOW)
    start = datetime(2024, 12, 10, 14, 27, tzinfo=UTC)
    pages, token = [], None
    while True:
        page = exchange.data.get_bars(
            symbols=["GME", "AMC"],
            timeframe="1Min",
            start=start,
            end=None,
            limit=3,
            page_token=token,
        )
        pages.append(page["bars"])
        token = page["next_page_token"]
        if token is None:
            break
    assert [list(p) for p in pages] == [["AMC"], ["AMC", "GME"], ["GME"]]
    amc = pages[0]["AMC"] + pages[1]["AMC"]
    assert [b["t"] for b in amc] == [f"2024-12-10T14:{m}:00Z" for m in (27, 28, 29, 30)]
    assert amc[-1] == {
        "t": "2024-12-10T14:30:00Z",
        "o": 4.53,
        "h": 4.56,
        "l": 4.485,
        "c": 4.4873,
        "v": 368784,
        "n": 1548,
        "vw": 4.514122,
    }
    gme_times = [b["t"] for p in pages for b in p.get("GME", [])]
    assert gme_times[-1] == "2024-12-10T14:30:00Z"
    assert len(set(gme_times)) == len(gme_times)
    daily = exchange.data.get_bars(
        symbols=["SPY"], timeframe="1D", start=NOW - timedelta(days=3), end=None
    )
    assert [b["t"] for b in daily["bars"]["SPY"]] == ["2024-12-09T05:00:00Z"]
    assert daily["bars"]["SPY"][0]["n"] is None


def test_rest_data_errors_have_no_code(real_market: MarketData) -> None:
    exchange = _exchange(real_market, NOW)
    with pytest.raises(SimError) as bad:
        exchange.data.get_bars(symbols=["AMC"], timeframe="5Min", start=None, end=None)
    assert bad.value.body() == {"message": bad.value.message}
    assert "timeframe" in bad.value.message
    with pytest.raises(SimError):
        exchange.data.get_bars(
            symbols=["AMC"],
            timeframe="1Min",
            start=None,
            end=None,
            page_token=base64.b64encode(b"garbage").decode(),
        )


def test_latest_trade_quote_bar_use_completed_bars(real_market: MarketData) -> None:
    exchange = _exchange(real_market, NOW)
    bar = exchange.data.latest_bars(["AMC", "ZZZZ"])["bars"]
    assert list(bar) == ["AMC"]
    assert bar["AMC"]["t"] == "2024-12-10T14:30:00Z"
    trade = exchange.data.latest_trades(["AMC"])["trades"]["AMC"]
    assert (trade["p"], trade["t"]) == (4.4873, "2024-12-10T14:30:59Z")
    quote = exchange.data.latest_quotes(["AMC"])["quotes"]["AMC"]
    assert quote["bp"] < 4.4873 < quote["ap"]
    streamed = exchange.data.stream_bar(real_market.latest_bar("AMC", NOW))
    assert streamed["T"] == "b"
    assert streamed["t"] == datetime(2024, 12, 10, 14, 30, tzinfo=UTC)
    assert {"S", "o", "h", "l", "c", "v", "n", "vw"} <= set(streamed)


def test_clock_and_calendar_wire_shapes(real_market: MarketData) -> None:
    exchange = _exchange(real_market, datetime(2024, 11, 29, 17, 0, tzinfo=UTC))
    clock = exchange.data.get_clock()
    assert clock == {
        "timestamp": "2024-11-29T12:00:00-05:00",
        "is_open": True,
        "next_open": "2024-12-02T09:30:00-05:00",
        "next_close": "2024-11-29T13:00:00-05:00",
    }
    days = exchange.data.get_calendar(datetime(2024, 11, 27).date(), datetime(2024, 11, 29).date())
    assert [(d["date"], d["open"], d["close"]) for d in days] == [
        ("2024-11-27", "09:30", "16:00"),
        ("2024-11-29", "09:30", "13:00"),
    ]
    assert days[0]["settlement_date"] == "2024-11-29"


def test_faults_update_validates() -> None:
    faults = Faults()
    faults.update(partial_fill_ratio=0.5, reject_next_orders=2, drop_streams=True)
    assert (faults.partial_fill_ratio, faults.reject_next_orders) == (0.5, 2)
    for bad in (
        {"nope": 1},
        {"http_error_rate": 2.0},
        {"latency_ms": "5"},
        {"drop_streams": 1},
        {"http_status": 200},
        {"refuse_message": ""},
        {"refuse_message": 5},
    ):
        with pytest.raises(ValueError, match=next(iter(bad))):
            faults.update(**bad)
    assert faults.http_status == 503
