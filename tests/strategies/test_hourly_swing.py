"""Hourly Swing: hysteresis on the real hourly bars, regular-session bars only."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from trend_helpers import bar, est_session, pandas_rsi, params, sessions

from magellan_daemon.backtest.bars_csv import iter_bars, symbol_files
from magellan_daemon.backtest.signals_replay import Decision, Replay
from strategies.hourly_swing import HourlySwing, HourlySwingParams

HOUR = timedelta(hours=1)


def regular_hourly(bars_dir: Path, symbol: str) -> pd.DataFrame:
    """The hourly bars lying entirely inside their session, per the real calendar."""
    df = pd.read_csv(
        bars_dir / "1Hour" / f"{symbol}.csv.gz", index_col="timestamp", parse_dates=["timestamp"]
    )
    lookup = sessions()
    keep = []
    for t in df.index:
        start = t.to_pydatetime()
        s = lookup(t.tz_convert("America/New_York").date())
        keep.append(s is not None and s.open <= start and start + HOUR <= s.close)
    return df[keep]


@pytest.fixture(scope="module")
def full_run(bars_dir: Path) -> tuple[HourlySwingParams, dict[str, list[Decision]]]:
    p = params("hourly_swing")
    replay = Replay(HourlySwing(p), sessions(), equity=100_000)
    return p, {
        symbol: list(replay.run_symbol(symbol, iter_bars(path, symbol, "1Hour")))
        for symbol, path in symbol_files(bars_dir, "1Hour").items()
        if symbol in p.symbols
    }


def test_full_history_follows_the_rule_on_regular_bars_only(bars_dir: Path, full_run) -> None:
    p, runs = full_run
    assert set(runs) == {"NVDA", "TSLA"}
    for symbol, decisions in runs.items():
        bands = p.symbols[symbol]
        df = regular_hourly(bars_dir, symbol)
        # A normal day has exactly 6 regular hourly bars (10:00..15:00 ET).
        ny = df.index.tz_convert("America/New_York")
        assert set(ny.hour) == {10, 11, 12, 13, 14, 15}
        rsi = pandas_rsi(df["close"], bands.rsi_period)
        position = {t: i for i, t in enumerate(df.index)}
        held = False
        assert len(decisions) > 20
        for d in decisions:
            i = position[pd.Timestamp(d.signal_time)]  # KeyError = a non-regular bar was used
            assert i + 1 >= 3 * bands.rsi_period
            assert d.price == df["close"].iloc[i]
            if d.action == "enter":
                assert not held and rsi.iloc[i] > bands.upper
            else:
                assert held and rsi.iloc[i] < bands.lower
            held = d.action == "enter"


def test_bar_alignment_and_execution_timing() -> None:
    p = params("hourly_swing")
    strategy = HourlySwing(p)
    day = date(2024, 11, 29)  # early close 13:00 ET = 18:00Z
    early = est_session(day, close_hour=18)
    normal = est_session(date(2024, 12, 2))
    base = datetime(2024, 11, 29, tzinfo=UTC)
    # 04:00, 08:00, 09:00 (half pre-market), 13:00 and 14:00 ET (after the 13:00 close)
    outside = [base + timedelta(hours=h) for h in (9, 13, 14, 18, 19)]
    for t in outside:
        ev = strategy.on_bar(bar("TSLA", t, 300.0, "1Hour"), session=early).evaluations[0]
        assert ev.reason == "outside regular session"
    assert strategy.snapshot()["symbols"]["TSLA"]["rsi"]["bars"] == 0
    inside = [base + timedelta(hours=h) for h in (15, 16, 17)]  # 10:00, 11:00, 12:00 ET
    for t in inside:
        strategy.on_bar(bar("TSLA", t, 300.0, "1Hour"), session=early)
    assert strategy.snapshot()["symbols"]["TSLA"]["rsi"]["bars"] == 3
    assert strategy._execute(bar("TSLA", inside[-1], 1, "1Hour"), early) == "next_open"
    assert strategy._execute(bar("TSLA", inside[0], 1, "1Hour"), early) == "now"
    last = datetime(2024, 12, 2, 20, tzinfo=UTC)  # 15:00 ET bar ends at the 16:00 close
    assert strategy._execute(bar("TSLA", last, 1, "1Hour"), normal) == "next_open"


def test_entry_on_closing_bar_is_next_open_with_equal_allocation() -> None:
    p = HourlySwingParams.model_validate(
        {
            "symbols": {"TSLA": {"rsi_period": 2, "upper": 60, "lower": 40}},
            "risk": {
                "max_open_positions": 2,
                "max_position_dollars": 50_000,
                "max_daily_loss_dollars": 10_000,
            },
        }
    )
    strategy = HourlySwing(p)
    session = est_session(date(2024, 12, 2))
    steps = [
        strategy.on_bar(
            bar("TSLA", datetime(2024, 12, 2, 15 + k, tzinfo=UTC), 100.0 + k, "1Hour"),
            session=session,
        )
        for k in range(6)
    ]
    assert [bool(s.intents) for s in steps] == [False] * 5 + [True]
    (intent,) = steps[-1].intents
    assert intent.execute == "next_open" and intent.sizing is not None
    assert intent.sizing.dollars == 50_000 and intent.sizing.price == 105.0


def test_the_rule_on_minute_bars_with_a_fixed_share_count() -> None:
    """``timeframe = "1Min"`` (the backtest's Hourly Swing on minute bars): every regular
    minute counts, the last minute of the session executes at the next open, and
    ``entry_shares`` sizes the entry in shares."""
    from strategies.api.model import Bar
    from strategies.api.params import HysteresisBands, RiskLimits
    from strategies.api.session import Session
    from strategies.lib.sizing import shares_for

    p = HourlySwingParams(
        symbols={"AMC": HysteresisBands(rsi_period=2, upper=60, lower=40)},
        timeframe="1Min",
        entry_shares=100,
        risk=RiskLimits(
            max_open_positions=1, max_position_dollars=50_000, max_daily_loss_dollars=10_000
        ),
    )
    s = HourlySwing(p)
    assert s.timeframe == "1Min"
    day = Session(
        date=date(2024, 4, 2),
        open=datetime(2024, 4, 2, 13, 30, tzinfo=UTC),
        close=datetime(2024, 4, 2, 20, 0, tzinfo=UTC),
    )
    intents = []
    for m in range(7):
        close = 10.0 + 0.1 * m  # rising: RSI 100 once warm (3 x period bars)
        b = Bar(
            symbol="AMC",
            timeframe="1Min",
            t=day.open + timedelta(minutes=m),
            open=close,
            high=close,
            low=close,
            close=close,
            volume=100.0,
        )
        intents += s.on_bar(b, session=day).intents
    [entry] = intents
    assert (entry.action, entry.execute) == ("buy", "now")
    assert shares_for(entry.sizing, equity=0) == 100  # type: ignore[arg-type]
    before_open = Bar(
        symbol="AMC",
        timeframe="1Min",
        t=day.open - timedelta(minutes=1),
        open=9.0,
        high=9.0,
        low=9.0,
        close=9.0,
        volume=1.0,
    )
    assert s.on_bar(before_open, session=day).intents == ()
