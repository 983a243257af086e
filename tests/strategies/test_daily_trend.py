"""Daily Trend: the hysteresis rule on the full real daily history, and unit behaviour."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from trend_helpers import bar, est_session, fill, pandas_rsi, params, sessions

from magellan_daemon.backtest.bars_csv import iter_bars, symbol_files
from magellan_daemon.backtest.signals_replay import Decision, Replay
from strategies.api.model import OrderUpdate
from strategies.daily_trend import DailyTrend, DailyTrendParams


@pytest.fixture(scope="module")
def full_run(bars_dir: Path) -> tuple[DailyTrendParams, dict[str, list[Decision]]]:
    p = params("daily_trend")
    replay = Replay(DailyTrend(p), sessions(), equity=100_000)
    out: dict[str, list[Decision]] = {}
    for symbol, path in symbol_files(bars_dir, "1Day").items():
        if symbol in p.symbols:
            out[symbol] = list(replay.run_symbol(symbol, iter_bars(path, symbol, "1Day")))
    return p, out


def test_full_history_follows_the_hysteresis_rule(bars_dir: Path, full_run) -> None:
    p, runs = full_run
    assert sum(len(d) for d in runs.values()) > 100  # the rule does trade on this history
    for symbol, decisions in runs.items():
        bands = p.symbols[symbol]
        df = pd.read_csv(
            bars_dir / "1Day" / f"{symbol}.csv.gz", index_col="timestamp", parse_dates=["timestamp"]
        )
        rsi = pandas_rsi(df["close"], bands.rsi_period)
        position = {pd.Timestamp(t): i for i, t in enumerate(df.index)}
        held = False
        for d in decisions:
            i = position[pd.Timestamp(d.signal_time)]
            assert i + 1 >= 3 * bands.rsi_period, f"{symbol} decision during warm-up"
            assert d.price == df["close"].iloc[i]
            if d.action == "enter":
                assert not held, f"{symbol} {d.signal_time}: entry while held"
                assert rsi.iloc[i] > bands.upper
                held = True
            else:
                assert held, f"{symbol} {d.signal_time}: exit while flat"
                assert rsi.iloc[i] < bands.lower
                held = False


def test_every_flat_crossing_is_taken(bars_dir: Path, full_run) -> None:
    """The converse: whenever flat and rsi > upper (after warm-up), an entry happens."""
    p, runs = full_run
    symbol = "SPY"
    bands = p.symbols[symbol]
    df = pd.read_csv(
        bars_dir / "1Day" / f"{symbol}.csv.gz", index_col="timestamp", parse_dates=["timestamp"]
    )
    rsi = pandas_rsi(df["close"], bands.rsi_period).to_numpy()
    held, expected = False, []
    for i in range(3 * bands.rsi_period - 1, len(df)):
        if not held and rsi[i] > bands.upper:
            held = True
            expected.append((df.index[i], "enter"))
        elif held and rsi[i] < bands.lower:
            held = False
            expected.append((df.index[i], "exit"))
    got = [(pd.Timestamp(d.signal_time), d.action) for d in runs[symbol]]
    assert got == expected


def jan(day: int) -> date:
    return date(2024, 1, 1) + timedelta(days=day)


def small_params(**bands: float) -> DailyTrendParams:
    sym = {"rsi_period": 2, "upper": 60, "lower": 40, "allocation": 1000} | bands
    return DailyTrendParams.model_validate(
        {
            "symbols": {"AAA": sym},
            "risk": {
                "max_open_positions": 1,
                "max_position_dollars": 1000,
                "max_daily_loss_dollars": 100,
            },
        }
    )


def feed(strategy: DailyTrend, closes: list[float], first_day: int = 0):
    steps = []
    for k, c in enumerate(closes):
        day = jan(first_day + k)
        t = datetime(day.year, day.month, day.day, 5, tzinfo=UTC)
        steps.append(strategy.on_bar(bar("AAA", t, c), session=est_session(day)))
    return steps


def test_warmup_then_entry_sized_in_dollars_for_next_open() -> None:
    strategy = DailyTrend(small_params())
    steps = feed(strategy, [10, 11, 12, 13, 14, 15])
    reasons = [s.evaluations[0].reason for s in steps[:5]]
    assert reasons[:5] == [f"warming up ({n}/6 bars)" for n in range(1, 6)]
    assert all(not s.intents for s in steps[:5])
    (intent,) = steps[5].intents
    assert intent.action == "buy" and intent.leg == "entry" and intent.execute == "next_open"
    assert intent.sizing is not None and intent.sizing.dollars == 1000 and intent.qty is None
    assert steps[5].evaluations[0].decision == "enter"
    assert steps[5].evaluations[0].values["rsi"] == 100.0


def test_pending_entry_blocks_duplicates_until_terminal_update() -> None:
    strategy = DailyTrend(small_params())
    (entry,) = feed(strategy, [10, 11, 12, 13, 14, 15])[-1].intents
    blocked = feed(strategy, [16], first_day=6)[0]
    assert not blocked.intents and blocked.evaluations[0].reason.startswith("order pending")
    rejected = OrderUpdate(
        strategy="daily_trend",
        symbol="AAA",
        leg="entry",
        signal_time=entry.signal_time,
        side="buy",
        kind="rejected",
        time=entry.signal_time,
    )
    strategy.on_order_update(rejected)
    assert strategy.pending("AAA") is None and strategy.position("AAA") == 0
    (again,) = feed(strategy, [17], first_day=7)[0].intents
    assert again.action == "buy"


def test_exit_sells_exactly_the_filled_position_and_never_when_flat() -> None:
    strategy = DailyTrend(small_params())
    # Falling prices while flat: rsi < lower but nothing to sell.
    flat = feed(strategy, [20, 19, 18, 17, 16, 15, 14])
    assert all(not s.intents for s in flat)
    assert flat[-1].evaluations[0].reason.startswith("not held")
    (entry,) = feed(strategy, [20], first_day=7)[0].intents
    strategy.on_order_update(fill("daily_trend", entry, 30, 20.0, filled=30))
    assert strategy.pending("AAA") is not None  # 1000/20 = 50 expected: still filling
    strategy.on_order_update(fill("daily_trend", entry, 20, 20.0, filled=50))
    assert strategy.position("AAA") == 50 and strategy.pending("AAA") is None
    held = feed(strategy, [26], first_day=8)[0]
    assert held.evaluations[0].decision == "hold" and "already held" in held.evaluations[0].reason
    (exit_,) = [i for s in feed(strategy, [20, 15], first_day=9) for i in s.intents]
    assert exit_.action == "sell" and exit_.qty == 50 and exit_.leg == "exit"
    strategy.on_order_update(fill("daily_trend", exit_, 50, 15.0))
    assert strategy.position("AAA") == 0 and strategy.pending("AAA") is None


def test_skips_non_session_unknown_symbol_and_nan_bars() -> None:
    strategy = DailyTrend(small_params())
    t = datetime(2024, 1, 6, 5, tzinfo=UTC)
    assert strategy.on_bar(bar("AAA", t, 10), session=None).evaluations[0].reason == (
        "outside regular session"
    )
    other = strategy.on_bar(bar("ZZZ", t, 10), session=est_session(date(2024, 1, 6)))
    assert other.evaluations[0].reason.startswith("unknown symbol")
    nan = strategy.on_bar(bar("AAA", t, math.nan), session=est_session(date(2024, 1, 6)))
    assert nan.evaluations[0].decision == "skip" and "invalid bar" in nan.evaluations[0].reason
    assert strategy.invalid_bars == 1
    assert strategy.snapshot()["symbols"]["AAA"]["rsi"]["bars"] == 0


def test_signals_are_identical_with_wilder_off_the_same_code_path(bars_dir: Path) -> None:
    """rsi_method=wilder changes decisions (a different smoothing is actually used)."""
    base = params("daily_trend")
    wilder = base.model_copy(update={"rsi_method": "wilder"})
    path = symbol_files(bars_dir, "1Day")["SPY"]
    runs = defaultdict(list)
    for label, p in (("ema", base), ("wilder", wilder)):
        replay = Replay(DailyTrend(p), sessions(), equity=100_000)
        runs[label] = [
            d.signal_time for d in replay.run_symbol("SPY", iter_bars(path, "SPY", "1Day"))
        ]
    assert runs["ema"] and runs["wilder"] and runs["ema"] != runs["wilder"]


def test_sync_takes_the_ledgers_position_and_clears_a_marker_whose_order_is_gone() -> None:
    from strategies.api.model import HoldingView, OpenOrderView

    dt = DailyTrend(params("daily_trend"))
    t = datetime(2024, 11, 26, 5, tzinfo=UTC)
    dt._symbols["SPY"].pending = {
        "leg": "entry",
        "side": "buy",
        "signal_time": t.isoformat(),
        "qty": 16,
    }
    still_open = OpenOrderView(leg="entry", signal_time=t, side="buy", remaining=16)
    dt.sync({"SPY": HoldingView(symbol="SPY", position=0, open_orders=(still_open,))}, t)
    assert dt.pending("SPY") is not None  # its order (or unsent intent) still exists
    assert dt.sync({"SPY": HoldingView(symbol="SPY", position=16)}, t).intents == ()
    assert dt.pending("SPY") is None and dt.position("SPY") == 16
