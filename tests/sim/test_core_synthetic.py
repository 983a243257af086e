"""The seeded synthetic market: deterministic, equity-like, with crashes to trade."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest

from magellan_core.clock import VirtualClock
from magellan_sim.exchange.exchange import Exchange
from magellan_sim.market.calendar import SessionCalendar
from magellan_sim.market.market import MarketData

START = date(2025, 3, 3)
SYMBOLS = ["SPY", "AMC"]


@pytest.fixture(scope="module")
def calendar() -> SessionCalendar:
    """The NYSE calendar."""
    return SessionCalendar()


@pytest.fixture(scope="module")
def default_market(calendar: SessionCalendar) -> MarketData:
    """The default symbol list over the default 30-session window."""
    return MarketData.synthetic(7, None, START, None, calendar)


def _arrays(market: MarketData, symbol: str, timeframe: str) -> list[np.ndarray]:
    series = market.series(symbol, timeframe)
    assert series is not None
    return [series.t, series.open, series.high, series.low, series.close, series.volume]


def test_same_seed_same_bars_other_seed_other_bars(calendar: SessionCalendar) -> None:
    end = START + timedelta(days=7)
    first = MarketData.synthetic(1, SYMBOLS, START, end, calendar)
    again = MarketData.synthetic(1, SYMBOLS, START, end, calendar)
    other = MarketData.synthetic(2, SYMBOLS, START, end, calendar)
    for timeframe in ("1Min", "1Hour", "1Day"):
        for a, b in zip(
            _arrays(first, "AMC", timeframe), _arrays(again, "AMC", timeframe), strict=True
        ):
            np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first.series("AMC", "1Min").close, other.series("AMC", "1Min").close)


def test_default_market_looks_like_equities(default_market: MarketData) -> None:
    assert {"SPY", "NVDA", "TSLA", "GME", "MULN", "GLD"} <= set(default_market.symbols())
    minutes = default_market.series("SPY", "1Min")
    days = default_market.series("SPY", "1Day")
    assert len(minutes) == 30 * 390  # no early close in March/April 2025
    assert len(days) == 330  # 300 sessions of history + the window
    assert np.all(minutes.low <= np.minimum(minutes.open, minutes.close))
    assert np.all(minutes.high >= np.maximum(minutes.open, minutes.close))
    # Daily bars are stamped 00:00 New York and aggregate the session's minutes.
    last = days.bar(len(days) - 1)
    assert (last.t.hour, last.t.minute) in ((4, 0), (5, 0))
    assert last.volume == int(minutes.volume[-390:].sum())
    assert last.high == float(minutes.high[-390:].max())
    # U-shaped volume: the first and last half hours trade more than midday.
    per_minute = minutes.volume.reshape(30, 390).mean(axis=0)
    assert per_minute[:30].mean() > 1.5 * per_minute[150:240].mean()
    assert per_minute[-30:].mean() > 1.5 * per_minute[150:240].mean()
    hours = default_market.series("NVDA", "1Hour")
    assert np.all(hours.t % 3600 == 0)


def test_default_window_has_an_intraday_crash(default_market: MarketData) -> None:
    worst = 0.0
    for symbol in default_market.symbols():
        minutes = default_market.series(symbol, "1Min")
        opens = minutes.open.reshape(30, 390)[:, 0]
        lows = minutes.low.reshape(30, 390).min(axis=1)
        worst = min(worst, float((lows / opens - 1).min()))
    assert worst <= -0.15


def test_exchange_trades_on_the_synthetic_market(default_market: MarketData) -> None:
    session = default_market.calendar.session(START)
    assert session is not None
    clock = VirtualClock(session.open + timedelta(minutes=5), speed=0)
    exchange = Exchange(clock, default_market, default_market.calendar, slippage_bps=10)
    order = exchange.orders.submit_order(
        "k",
        symbol="SPY",
        qty=Decimal(5),
        notional=None,
        side="buy",
        type="market",
        time_in_force="day",
        limit_price=None,
        stop_price=None,
        client_order_id=None,
        extended_hours=False,
    )
    clock.set(session.open + timedelta(minutes=7))
    filled = exchange.orders.get_order("k", order["id"])
    bar = default_market.bar_starting_at("SPY", session.open + timedelta(minutes=5))
    assert filled["status"] == "filled"
    assert Decimal(filled["filled_avg_price"]) == Decimal(repr(round(bar.open * 1.001, 4)))
    history = exchange.data.get_bars(
        symbols=["SPY"],
        timeframe="1Day",
        start=datetime(2023, 1, 1, tzinfo=session.open.tzinfo),
        end=None,
        limit=10000,
    )
    assert len(history["bars"]["SPY"]) == 300  # all warm-up sessions, today's not complete


def test_extra_symbols_a_full_market_with_a_few_crashes(calendar: SessionCalendar) -> None:
    market = MarketData.synthetic(3, ["SPY"], START, START, calendar, (400, START, 2))
    extras = sorted(s for s in market.symbols() if s != "SPY")
    assert len(extras) == 400 and extras[0] == "QAAAA" and extras[-1] == "QAAPJ"
    crashed = 0
    for symbol in extras:
        series = market.series(symbol, "1Min")
        assert series is not None
        assert len(series.t) == 2 * 390  # two full sessions of minute bars, no history
        assert 0.5 < series.open[0] < 120
        for day in range(2):
            session = slice(390 * day, 390 * (day + 1))
            low, opened = series.low[session].min(), series.open[session][0]
            crashed += bool(low <= 0.85 * opened)
    # CRASH_PROBABILITY (3%) per session, plus the random walk's own deep days.
    assert 0.01 * 800 <= crashed <= 0.15 * 800
    again = MarketData.synthetic(3, ["SPY"], START, START, calendar, (400, START, 2))
    for symbol in ("QAAAA", "QAAPJ"):
        first, second = market.series(symbol, "1Min"), again.series(symbol, "1Min")
        assert first is not None and second is not None
        assert (first.close == second.close).all()


def test_extra_symbols_crashes_end_in_a_bear_trap_shape(calendar: SessionCalendar) -> None:
    """After a crash's low, one bar undercuts the session's low so far and closes back above
    it on heavy volume; every bar stays a valid OHLC bar."""
    market = MarketData.synthetic(3, ["SPY"], START, START, calendar, (300, START, 2))
    traps = 0
    for symbol in (s for s in market.symbols() if s != "SPY"):
        series = market.series(symbol, "1Min")
        assert series is not None
        assert (series.low <= np.minimum(series.open, series.close)).all()
        assert (series.high >= np.maximum(series.open, series.close)).all()
        for day in range(2):
            lows = series.low[390 * day : 390 * (day + 1)]
            closes = series.close[390 * day : 390 * (day + 1)]
            before = np.minimum.accumulate(lows)[:-1]
            traps += int(((lows[1:] < before) & (closes[1:] > before)).any())
    assert traps >= 5
