"""Property tests (hypothesis) for Daily Trend and Hourly Swing over random bar sequences."""

from __future__ import annotations

import math
import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
from hypothesis import given, settings, target
from hypothesis import strategies as st
from trend_helpers import est_session, fill

from strategies.api.model import Bar, OrderUpdate
from strategies.daily_trend import DailyTrend, DailyTrendParams
from strategies.hourly_swing import HourlySwing, HourlySwingParams

SYMBOLS = ("AAA", "BBB")
RISK = {"max_open_positions": 2, "max_position_dollars": 5000, "max_daily_loss_dollars": 1000}
SPECIAL = [math.nan, math.inf, 0.0]


def random_events(rng: random.Random, n: int) -> list[tuple]:
    """``n`` bar events: (symbol index, close, shape, volume, broker reaction).

    Built from a hypothesis-controlled ``Random`` so most bars are valid random-walk prices
    (positions really open and close) with NaN, inf, zero prices, zero-range and zero- or
    NaN-volume bars sprinkled in.
    """
    closes = [100.0, 100.0]
    events = []
    for _ in range(n):
        i = rng.randrange(2)
        closes[i] = max(1.0, closes[i] * (1 + rng.gauss(0, 0.05)))
        close = rng.choice(SPECIAL) if rng.random() < 0.08 else closes[i]
        shape = rng.choice(["range"] * 6 + ["flat", "nan_high"])
        volume = rng.choice([100.0] * 6 + [0.0, math.nan])
        how = rng.choice(["fill", "fill", "partial", "reject", "ignore"])
        events.append((i, close, shape, volume, how))
    return events


event_lists = st.builds(random_events, st.randoms(use_true_random=False), st.integers(0, 120))


def daily(method: str) -> DailyTrend:
    sym = {"rsi_period": 2, "upper": 55, "lower": 45, "allocation": 1000}
    return DailyTrend(
        DailyTrendParams.model_validate(
            {"symbols": dict.fromkeys(SYMBOLS, sym), "risk": RISK, "rsi_method": method}
        )
    )


def hourly(method: str) -> HourlySwing:
    sym = {"rsi_period": 3, "upper": 55, "lower": 45}
    return HourlySwing(
        HourlySwingParams.model_validate(
            {"symbols": dict.fromkeys(SYMBOLS, sym), "risk": RISK, "rsi_method": method}
        )
    )


def make_bar(strategy: Any, k: int, ev: tuple) -> tuple[Bar, Any]:
    sym_i, close, shape, volume, _ = ev
    day = date(2024, 1, 1) + timedelta(days=k // 7)
    session = est_session(day)
    if strategy.timeframe == "1Day":
        t = datetime(day.year, day.month, day.day, 5, tzinfo=UTC)
    else:  # 14Z..20Z: the first (09:00 ET) bar is outside the session
        t = datetime(day.year, day.month, day.day, 14 + k % 7, tzinfo=UTC)
    high = {"flat": close, "range": close * 1.01, "nan_high": math.nan}[shape]
    low = close if shape == "flat" else close * 0.99
    b = Bar(
        symbol=SYMBOLS[sym_i],
        timeframe=strategy.timeframe,
        t=t,
        open=close,
        high=high,
        low=low,
        close=close,
        volume=volume,
    )
    return b, session


def react(strategy: Any, step: Any, how: str, held: dict[str, int]) -> None:
    for intent in step.intents:
        if intent.action == "sell":
            assert 0 < intent.qty <= strategy.position(intent.symbol)
        else:
            assert strategy.position(intent.symbol) == 0
        qty = intent.qty if intent.action == "sell" else 3
        if how == "fill":
            strategy.on_order_update(fill(strategy.name, intent, qty, 10.0, filled=10**6))
        elif how == "partial":
            strategy.on_order_update(fill(strategy.name, intent, 1, 10.0, filled=1))
        elif how == "reject":
            strategy.on_order_update(
                OrderUpdate(
                    strategy=strategy.name,
                    symbol=intent.symbol,
                    leg=intent.leg,
                    signal_time=intent.signal_time,
                    side="buy" if intent.action == "buy" else "sell",
                    kind="rejected",
                    time=intent.signal_time,
                )
            )
        held[intent.symbol] = strategy.position(intent.symbol)


def run(strategy: Any, events: list[tuple], offset: int = 0) -> list:
    held: dict[str, int] = {}
    out = []
    for k, ev in enumerate(events):
        b, session = make_bar(strategy, k + offset, ev)
        step = strategy.on_bar(b, session=session)
        assert len(step.evaluations) == 1
        react(strategy, step, ev[4], held)
        assert all(strategy.position(s) >= 0 for s in SYMBOLS)
        out.append(step)
    return out


@settings(max_examples=60, deadline=None)
@given(
    events=event_lists,
    kind=st.sampled_from(["daily", "hourly"]),
    method=st.sampled_from(["ema", "wilder"]),
)
def test_random_bars_never_raise_nor_oversell(events: list[tuple], kind: str, method: str) -> None:
    strategy = daily(method) if kind == "daily" else hourly(method)
    steps = run(strategy, events)
    # Steer the search towards sequences that trade (the interesting ones).
    target(float(sum(len(s.intents) for s in steps)))


@settings(max_examples=40, deadline=None)
@given(
    events=event_lists,
    split=st.integers(0, 120),
    kind=st.sampled_from(["daily", "hourly"]),
)
def test_snapshot_round_trips_and_continues_identically(
    events: list[tuple], split: int, kind: str
) -> None:
    make = daily if kind == "daily" else hourly
    split = min(split, len(events))
    a = make("ema")
    run(a, events[:split])
    snap = a.snapshot()
    restored_state = orjson.loads(orjson.dumps(snap))  # must survive JSON
    b = type(a)(a.params, state=restored_state)
    assert b.snapshot() == snap
    assert run(a, events[split:], offset=split) == run(b, events[split:], offset=split)
    assert a.snapshot() == b.snapshot()
