"""Corporate actions in the simulator, through the real alpaca-py clients, on the shared bars
and their ``corporate_actions.csv`` (plus a SPY dividend the test adds):

* NVDA 10:1 on 2024-06-10 (1Day 2024-06-07: O 1211.00 ... C 1207.75, V 41193480);
* WKHS 1-for-20 on 2024-06-17 (the last regular minute of 2024-06-14 closes at 0.1501,
  so the adjusted previous close is 3.002);
* SPY cash dividend 1.7588 on 2024-06-21 (made up for the test from the real one).

Every action applies at 00:00 New York of its ex-date (04:00Z in June).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest
from alpaca.data.enums import Adjustment
from alpaca.data.historical.corporate_actions import CorporateActionsClient
from alpaca.data.requests import CorporateActionsRequest, StockBarsRequest
from alpaca.data.timeframe import TimeFrame
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest, StopOrderRequest

from magellan_core.clock import VirtualClock
from magellan_core.corporate_actions import load_corporate_actions
from magellan_daemon.cli.main import main
from magellan_sim.exchange.exchange import Exchange
from magellan_sim.factory import SimOptions, corporate_actions_of
from magellan_sim.market.market import MarketData
from tests.sim.conftest import KEY, SECRET

MINUTE = timedelta(minutes=1)
START = datetime(2024, 6, 7, 13, 25, tzinfo=UTC)  # 09:25 New York, the Friday before
NVDA_SPLIT = datetime(2024, 6, 10, 4, 0, tzinfo=UTC)  # 00:00 New York on the ex-date
WKHS_SPLIT = datetime(2024, 6, 17, 4, 0, tzinfo=UTC)
SPY_DIVIDEND = datetime(2024, 6, 21, 4, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(START, speed=0)


@pytest.fixture
def actions_file(bars_dir: Path, tmp_path: Path) -> Path:
    shared = (bars_dir.parent / "corporate_actions.csv").read_text()
    path = tmp_path / "corporate_actions.csv"
    path.write_text(shared.rstrip("\n") + "\nSPY,cash_dividend,2024-06-21,,,1.7588\n")
    return path


@pytest.fixture
def exchange(clock: VirtualClock, market: MarketData, actions_file: Path) -> Exchange:
    actions = load_corporate_actions(actions_file)
    return Exchange(clock, market, market.calendar, corporate_actions=actions)


def market_order(symbol: str, side: OrderSide, qty: float) -> MarketOrderRequest:
    return MarketOrderRequest(symbol=symbol, qty=qty, side=side, time_in_force=TimeInForce.DAY)


async def buy_at_open(sim, symbol: str, qty: float, open_at: datetime, client=None) -> float:
    """Market-buy at ``open_at`` (a session open); the fill price."""
    client = client or sim.trading
    await sim.step_to(open_at)
    order = await sim.call(client.submit_order, market_order(symbol, OrderSide.BUY, qty))
    await sim.step_to(open_at + MINUTE)
    filled = await sim.call(client.get_order_by_id, order.id)
    assert filled.status == "filled"
    return float(filled.filled_avg_price)


async def activities(sim, path: str = "/account/activities", client=None, **params) -> list:
    return await sim.call((client or sim.trading).get, path, params or None)


async def test_nvda_forward_split_rebases_the_position_and_cancels_resting_orders(sim) -> None:
    async with sim.trade_updates() as updates:
        price = await buy_at_open(sim, "NVDA", 10, datetime(2024, 6, 7, 13, 30, tzinfo=UTC))
        stop = await sim.call(
            sim.trading.submit_order,
            StopOrderRequest(
                symbol="NVDA", qty=10, side=OrderSide.SELL, stop_price=1000,
                time_in_force=TimeInForce.GTC,
            ),
        )  # fmt: skip
        bidder = TradingClient("bidder-key", SECRET, url_override=sim.server.url)
        bid = await sim.call(
            bidder.submit_order,
            LimitOrderRequest(
                symbol="NVDA", qty=1, side=OrderSide.BUY, limit_price=900,
                time_in_force=TimeInForce.GTC,
            ),
        )  # fmt: skip
        await sim.step_to(NVDA_SPLIT - MINUTE)
        position = await sim.call(sim.trading.get_open_position, "NVDA")
        assert float(position.qty) == 10  # nothing before the ex-date
        await sim.step_to(NVDA_SPLIT + MINUTE)
        events = await sim.drain_until(updates, lambda u: u.event == "canceled")
    (canceled,) = [u for u in events if u.event == "canceled"]
    assert (canceled.order.id, canceled.timestamp) == (stop.id, NVDA_SPLIT)
    assert await sim.call(sim.trading.get_orders) == []
    assert (await sim.call(bidder.get_order_by_id, bid.id)).status == "canceled"

    position = await sim.call(sim.trading.get_open_position, "NVDA")
    assert float(position.qty) == 100
    assert float(position.qty_available) == 100
    assert float(position.avg_entry_price) == pytest.approx(price / 10)
    # the last price (the previous close) is on the new scale too: no 90% "drop"
    assert float(position.current_price) == pytest.approx(120.775)  # 1207.75 / 10
    assert float(position.lastday_price) == pytest.approx(float(position.current_price), rel=0.01)

    splits = await activities(sim, "/account/activities/SPLIT")
    assert len(splits) == 1
    split = splits[0]
    assert (split["activity_type"], split["symbol"], split["date"]) == (
        "SPLIT",
        "NVDA",
        "2024-06-10",
    )
    assert (split["qty"], split["net_amount"]) == ("90", "0")
    assert await activities(sim, "/account/activities/CIL") == []
    # applied once: asking again (every request advances the exchange) changes nothing
    sim.exchange.advance()
    assert len(await activities(sim, activity_types="SPLIT")) == 1
    assert float((await sim.call(sim.trading.get_open_position, "NVDA")).qty) == 100

    # the whole post-split position sells at the ex-date's open
    await sim.step_to(datetime(2024, 6, 10, 13, 30, tzinfo=UTC))
    sell = await sim.call(sim.trading.submit_order, market_order("NVDA", OrderSide.SELL, 100))
    await sim.step_to(datetime(2024, 6, 10, 13, 31, tzinfo=UTC))
    sold = await sim.call(sim.trading.get_order_by_id, sell.id)
    assert sold.status == "filled" and float(sold.filled_qty) == 100
    assert float(sold.filled_avg_price) == pytest.approx(120, rel=0.05)


async def test_wkhs_reverse_split_pays_cash_in_lieu(sim) -> None:
    small = TradingClient("small-key", SECRET, url_override=sim.server.url)
    open_at = datetime(2024, 6, 14, 13, 30, tzinfo=UTC)
    await buy_at_open(sim, "WKHS", 50, open_at)
    await sim.call(small.submit_order, market_order("WKHS", OrderSide.BUY, 10))
    await sim.step_to(open_at + 2 * MINUTE)
    cash = Decimal((await sim.call(sim.trading.get_account)).cash)
    small_cash = Decimal((await sim.call(small.get_account)).cash)
    cost = Decimal((await sim.call(sim.trading.get_open_position, "WKHS")).cost_basis)

    await sim.step_to(WKHS_SPLIT + MINUTE)
    position = await sim.call(sim.trading.get_open_position, "WKHS")
    assert float(position.qty) == 2  # 50 / 20 = 2.5: 2 shares and half a share in cash
    assert Decimal(position.cost_basis) == pytest.approx(cost * 2 / Decimal("2.5"))
    assert Decimal((await sim.call(sim.trading.get_account)).cash) == cash + Decimal("1.50")
    (cil,) = await activities(sim, "/account/activities/CIL")
    assert (cil["symbol"], cil["date"], cil["qty"]) == ("WKHS", "2024-06-17", "0.5")
    assert (cil["price"], cil["net_amount"]) == ("3.002", "1.5")
    (split,) = await activities(sim, "/account/activities/SPLIT")
    assert split["qty"] == "-48"

    # 10 shares become half a share: the whole holding is paid in cash
    assert await sim.call(small.get_all_positions) == []
    assert Decimal((await sim.call(small.get_account)).cash) == small_cash + Decimal("1.50")
    kinds = [a["activity_type"] for a in await activities(sim, client=small, direction="asc")]
    assert kinds == ["FILL", "SPLIT", "CIL"]


async def test_dividend_is_credited_on_the_ex_date_for_shares_held(sim) -> None:
    await buy_at_open(sim, "SPY", 10, datetime(2024, 6, 20, 13, 30, tzinfo=UTC))
    cash = Decimal((await sim.call(sim.trading.get_account)).cash)
    await sim.step_to(SPY_DIVIDEND - MINUTE)
    assert await activities(sim, "/account/activities/DIV") == []
    await sim.step_to(SPY_DIVIDEND + MINUTE)
    assert Decimal((await sim.call(sim.trading.get_account)).cash) == cash + Decimal("17.59")
    (div,) = await activities(sim, "/account/activities/DIV")
    assert (div["symbol"], div["date"], div["qty"]) == ("SPY", "2024-06-21", "10")
    assert (div["per_share_amount"], div["net_amount"]) == ("1.7588", "17.59")
    both = await activities(sim, activity_types="FILL,DIV", direction="asc")
    assert [a["activity_type"] for a in both] == ["FILL", "DIV"]
    newest_first = await activities(sim, page_size=1)
    assert newest_first[0]["activity_type"] == "DIV"
    rest = await activities(sim, page_token=newest_first[0]["id"])
    assert [a["activity_type"] for a in rest] == ["FILL"]
    # a dividend does not change the share count
    position = await sim.call(sim.trading.get_open_position, "SPY")
    assert float(position.qty) == 10


async def test_corporate_actions_endpoint_serves_the_file(sim) -> None:
    client = CorporateActionsClient(KEY, SECRET, url_override=sim.server.url)
    found = await sim.call(
        client.get_corporate_actions,
        CorporateActionsRequest(start=date(2024, 6, 1), end=date(2024, 6, 30)),
    )
    (nvda,) = found.data["forward_splits"]
    assert (nvda.symbol, nvda.ex_date, nvda.new_rate, nvda.old_rate) == (
        "NVDA", date(2024, 6, 10), 10, 1
    )  # fmt: skip
    (wkhs,) = found.data["reverse_splits"]
    assert (wkhs.symbol, wkhs.ex_date, wkhs.new_rate, wkhs.old_rate) == (
        "WKHS", date(2024, 6, 17), 1, 20
    )  # fmt: skip
    (spy,) = found.data["cash_dividends"]
    assert (spy.symbol, spy.ex_date, spy.rate) == ("SPY", date(2024, 6, 21), 1.7588)

    by_symbol = await sim.call(
        client.get_corporate_actions,
        CorporateActionsRequest(
            symbols=["TSLA"], types=["forward_split"], start=date(2018, 1, 1), end=date(2025, 1, 1)
        ),
    )
    assert [a.ex_date for a in by_symbol.data["forward_splits"]] == [
        date(2020, 8, 31), date(2022, 8, 25)
    ]  # fmt: skip
    # the default range is today (2024-06-07): nothing
    today = await sim.call(client.get_corporate_actions, CorporateActionsRequest())
    assert today.data == {}
    # paged two at a time: the eight splits and the dividend
    async with aiohttp.ClientSession(sim.server.url, headers=_auth()) as http:
        seen: list[str] = []
        token = None
        while True:
            params = {"start": "2018-01-01", "end": "2025-01-01", "limit": "2"}
            if token:
                params["page_token"] = token
            async with http.get("/v1/corporate-actions", params=params) as response:
                assert response.status == 200
                page = await response.json()
            seen += [a["symbol"] for items in page["corporate_actions"].values() for a in items]
            token = page["next_page_token"]
            if token is None:
                break
        assert len(seen) == 9
        bad_queries = [
            {"types": "split"},
            {"start": "2024-06-10", "end": "2024-06-01"},
            {"ids": "x", "symbols": "NVDA"},
            {"limit": "0"},
            {"page_token": "zz"},
        ]
        for bad in bad_queries:
            async with http.get("/v1/corporate-actions", params=bad) as response:
                assert response.status in (400, 422), bad


def _auth() -> dict[str, str]:
    return {"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET}


async def test_bars_adjustment_raw_by_default_and_without_look_ahead(sim) -> None:
    request = StockBarsRequest(
        symbol_or_symbols="NVDA",
        timeframe=TimeFrame.Day,
        start=datetime(2024, 6, 6, tzinfo=UTC),
        end=datetime(2024, 6, 12, tzinfo=UTC),
    )
    # Saturday 2024-06-08: the split is not known to the history yet
    await sim.step_to(datetime(2024, 6, 8, 16, 0, tzinfo=UTC))
    early = await sim.call(
        sim.data.get_stock_bars, request.model_copy(update={"adjustment": Adjustment.SPLIT})
    )
    assert [b.open for b in early.data["NVDA"]] == [1245.93, 1211.0]

    await sim.step_to(datetime(2024, 6, 11, 21, 0, tzinfo=UTC))
    raw = await sim.call(sim.data.get_stock_bars, request)
    assert [b.open for b in raw.data["NVDA"]] == [1245.93, 1211.0, 120.8, 121.92]
    split = await sim.call(
        sim.data.get_stock_bars, request.model_copy(update={"adjustment": Adjustment.SPLIT})
    )
    friday = split.data["NVDA"][1]
    assert (friday.open, friday.close, friday.volume) == (121.1, 120.775, 411934800)
    assert [b.open for b in split.data["NVDA"][2:]] == [120.8, 121.92]
    # no dividend for NVDA in the file: "all" is the split adjustment
    adjusted_all = await sim.call(
        sim.data.get_stock_bars, request.model_copy(update={"adjustment": Adjustment.ALL})
    )
    assert [b.open for b in adjusted_all.data["NVDA"]] == [b.open for b in split.data["NVDA"]]
    hourly = await sim.call(
        sim.data.get_stock_bars,
        StockBarsRequest(
            symbol_or_symbols="NVDA", timeframe=TimeFrame.Hour, adjustment=Adjustment.SPLIT,
            start=datetime(2024, 6, 7, 19, 0, tzinfo=UTC),
            end=datetime(2024, 6, 10, 14, 0, tzinfo=UTC),
        ),
    )  # fmt: skip
    assert all(100 < b.close < 140 for b in hourly.data["NVDA"])
    async with aiohttp.ClientSession(sim.server.url, headers=_auth()) as http:
        params = {"symbols": "NVDA", "timeframe": "1Day", "adjustment": "splits"}
        async with http.get("/v2/stocks/bars", params=params) as response:
            assert response.status == 400
            assert "adjustment" in (await response.json())["message"]


async def test_dividend_adjustment_scales_the_bars_before_the_ex_date(sim) -> None:
    request = StockBarsRequest(
        symbol_or_symbols="SPY",
        timeframe=TimeFrame.Day,
        start=datetime(2024, 6, 17, tzinfo=UTC),
        end=datetime(2024, 6, 25, tzinfo=UTC),
    )
    await sim.step_to(datetime(2024, 6, 25, 21, 0, tzinfo=UTC))
    raw = (await sim.call(sim.data.get_stock_bars, request)).data["SPY"]
    dividend = (
        await sim.call(
            sim.data.get_stock_bars, request.model_copy(update={"adjustment": Adjustment.DIVIDEND})
        )
    ).data["SPY"]
    ratios = {b.timestamp.date(): d.close / b.close for b, d in zip(raw, dividend, strict=True)}
    before = [r for day, r in ratios.items() if day < date(2024, 6, 21)]
    after = [r for day, r in ratios.items() if day >= date(2024, 6, 21)]
    assert after and all(r == 1 for r in after)
    assert before and all(r == pytest.approx(before[0]) for r in before)
    assert before[0] == pytest.approx(1 - 1.7588 / 547, abs=2e-5)  # SPY closed near 547
    assert [b.volume for b in dividend] == [b.volume for b in raw]


def test_sim_cli_refuses_a_bad_corporate_actions_file(
    bars_dir: Path, tmp_path: Path, capsys
) -> None:
    bad = tmp_path / "actions.csv"
    bad.write_text(
        "symbol,type,ex_date,new_rate,old_rate,rate\n"
        "NVDA,forward_split,2024-06-10,10,1,\n"
        "WKHS,reverse_split,2024-06-17,20,1,\n"
    )
    assert main(["sim", "--bars", str(bars_dir), "--corporate-actions", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"magellan sim: {bad}: line 3: a reverse_split needs new_rate < old_rate" in err


def test_sim_reads_the_file_beside_its_bars(bars_dir: Path, tmp_path: Path, capsys) -> None:
    options = SimOptions(bars_dir=bars_dir)
    assert [a.symbol for a in corporate_actions_of(options)][-2:] == ["NVDA", "WKHS"]
    bars = tmp_path / "bars"
    (bars / "1Day").mkdir(parents=True)
    (tmp_path / "corporate_actions.csv").write_text("symbol,type,ex_date\nSPY,x,2024-01-02\n")
    assert main(["sim", "--bars", str(bars)]) == 2
    assert ": line 1: header must be symbol,type,ex_date,new_rate" in capsys.readouterr().err
