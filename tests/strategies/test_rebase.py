"""Re-basing strategy state across a split equals building it from adjusted history.

Each strategy is run twice over the real bars around a split: once on the raw bars (as the
daemon receives them) with ``rebase`` called before the ex-date's first bar, once on bars
adjusted for the split (prices divided, volumes multiplied) with no re-base. Both must take
the same decisions from the ex-date on, and their indicators must agree. Bear Trap's state
and an open trade plan are checked the same way on made-up minute bars.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from trend_helpers import params, sessions

from magellan_daemon.backtest.bars_csv import iter_bars
from strategies.api.model import Bar, FixedDollars, OrderUpdate
from strategies.api.session import Session
from strategies.bear_trap.params import BearTrapParams
from strategies.bear_trap.plan import TradePlan
from strategies.bear_trap.rebase import rebase_plan
from strategies.bear_trap.state import SymbolState
from strategies.bear_trap.strategy import BearTrap
from strategies.daily_trend import DailyTrend
from strategies.hourly_swing import HourlySwing
from strategies.lib.hysteresis import HysteresisStrategy, new_york_date
from strategies.lib.rebase import shares_after


def adjusted(bars: Iterable[Bar], ex_date: date, ratio: float) -> list[Bar]:
    """``bars`` as adjusted history shows them: before the ex-date, prices / ratio and
    volume * ratio."""
    out = []
    for b in bars:
        if new_york_date(b.t) < ex_date:
            b = replace(
                b,
                open=b.open / ratio,
                high=b.high / ratio,
                low=b.low / ratio,
                close=b.close / ratio,
                volume=b.volume * ratio,
            )
        out.append(b)
    return out


def run(
    strategy: HysteresisStrategy,
    bars: list[Bar],
    *,
    rebase_on: date | None = None,
    ratio: float = 1.0,
) -> list[tuple[datetime, str, float | None]]:
    """Each bar's (time, decision, rsi), filling every order at once at the bar's close."""
    lookup = sessions()
    out = []
    rebased = False
    for b in bars:
        if rebase_on is not None and not rebased and new_york_date(b.t) >= rebase_on:
            strategy.rebase(b.symbol, ratio)
            rebased = True
        step = strategy.on_bar(b, session=lookup(new_york_date(b.t)))
        for ev in step.evaluations:
            out.append((ev.bar_time, ev.decision, ev.values.get("rsi")))
        for intent in step.intents:
            if intent.action == "buy":
                assert isinstance(intent.sizing, FixedDollars)
                qty = math.floor(intent.sizing.dollars / intent.sizing.price)
            else:
                assert intent.qty is not None
                qty = intent.qty
            strategy.on_order_update(
                OrderUpdate(
                    strategy=strategy.name,
                    symbol=intent.symbol,
                    leg=intent.leg,
                    signal_time=intent.signal_time,
                    side="buy" if intent.action == "buy" else "sell",
                    kind="fill",
                    time=b.t,
                    qty=qty,
                    price=b.close,
                    filled_qty=qty,
                    order_qty=qty,
                )
            )
    return out


def window(bars_dir: Path, tf: str, symbol: str, start: date, end: date) -> list[Bar]:
    path = bars_dir / tf / f"{symbol}.csv.gz"
    return [b for b in iter_bars(path, symbol, tf) if start <= new_york_date(b.t) <= end]


def assert_same_from(ex_date: date, rebased: list, on_adjusted: list) -> None:
    after = [r for r in rebased if new_york_date(r[0]) >= ex_date]
    expected = [r for r in on_adjusted if new_york_date(r[0]) >= ex_date]
    assert [(t, d) for t, d, _ in after] == [(t, d) for t, d, _ in expected]
    for (_, _, a), (_, _, b) in zip(after, expected, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            assert a == pytest.approx(b, abs=1e-6)


def test_hourly_swing_holds_nvda_through_its_10_for_1_split(bars_dir: Path) -> None:
    ex_date, ratio = date(2024, 6, 10), 10.0
    raw = window(bars_dir, "1Hour", "NVDA", date(2024, 1, 2), date(2024, 6, 28))
    plain = run(HourlySwing(params("hourly_swing")), raw)
    ten = datetime(2024, 6, 10, 14, tzinfo=UTC)  # the 10:00 ET bar of the ex-date
    assert [d for t, d, _ in plain if t == ten] == ["exit"]  # the defect, on raw bars
    strategy = HourlySwing(params("hourly_swing"))
    rebased = run(strategy, raw, rebase_on=ex_date, ratio=ratio)
    on_adjusted = run(HourlySwing(params("hourly_swing")), adjusted(raw, ex_date, ratio))
    assert_same_from(ex_date, rebased, on_adjusted)
    assert all(d != "exit" for t, d, _ in rebased if new_york_date(t) == ex_date)
    exits = [t for t, d, _ in rebased if d == "exit" and new_york_date(t) >= ex_date]
    assert new_york_date(exits[0]) == date(2024, 6, 21)


@pytest.mark.parametrize(
    ("symbol", "ex_date", "ratio"),
    [
        ("AAPL", date(2020, 8, 31), 4.0),
        ("TSLA", date(2020, 8, 31), 5.0),
        ("AMZN", date(2022, 6, 6), 20.0),
        ("GOOGL", date(2022, 7, 18), 20.0),
        ("TSLA", date(2022, 8, 25), 3.0),
    ],
)
def test_daily_trend_rebased_equals_adjusted(
    bars_dir: Path, symbol: str, ex_date: date, ratio: float
) -> None:
    raw = window(
        bars_dir, "1Day", symbol, ex_date - timedelta(days=400), ex_date + timedelta(days=200)
    )
    rebased = run(DailyTrend(params("daily_trend")), raw, rebase_on=ex_date, ratio=ratio)
    on_adjusted = run(DailyTrend(params("daily_trend")), adjusted(raw, ex_date, ratio))
    assert_same_from(ex_date, rebased, on_adjusted)


def test_a_position_and_a_pending_exit_scale_with_the_split() -> None:
    strategy = HourlySwing(params("hourly_swing"))
    st = strategy._symbols["NVDA"]
    st.position = 7
    st.pending = {"leg": "exit", "side": "sell", "signal_time": "x", "qty": 7}
    strategy.rebase("NVDA", 10.0)
    assert st.position == 70 and st.pending["qty"] == 70
    strategy.rebase("NVDA", 1 / 20)  # a 1-for-20 reverse split: 3.5 shares -> 3
    assert st.position == 3 and st.pending["qty"] == 3
    strategy.rebase("UNKNOWN", 2.0)  # nothing held, nothing watched: nothing to do


def test_shares_after_a_split_round_down_and_survive_float_error() -> None:
    assert shares_after(30, 1 / 3) == 10
    assert shares_after(31, 1 / 20) == 1
    assert shares_after(19, 1 / 20) == 0
    assert shares_after(0, 10.0) == 0


# -- Bear Trap -----------------------------------------------------------------------------

DAY = date(2024, 3, 4)
OPEN = datetime(2024, 3, 4, 14, 30, tzinfo=UTC)
SESSION = Session(date=DAY, open=OPEN, close=OPEN + timedelta(hours=6, minutes=30))
NEXT_DAY = date(2024, 3, 5)
NEXT_OPEN = OPEN + timedelta(days=1)
NEXT_SESSION = Session(
    date=NEXT_DAY, open=NEXT_OPEN, close=NEXT_OPEN + timedelta(hours=6, minutes=30)
)


def minute_bars(day_open: datetime, n: int, base: float, scale: float = 1.0) -> list[Bar]:
    out = []
    for i in range(n):
        mid = (base + math.sin(i / 3) * 2 + i * 0.05) / scale
        out.append(
            Bar(
                symbol="SPLT",
                timeframe="1Min",
                t=day_open + timedelta(minutes=i),
                open=mid,
                high=mid + 0.6 / scale,
                low=mid - 0.7 / scale,
                close=mid + 0.1 / scale,
                volume=1000.0 + 37 * i,
            )
        )
    return out


def _bear_trap() -> BearTrap:
    return BearTrap(BearTrapParams(universe=("SPLT",), risk=params("bear_trap").risk))


def _lookup(day: date) -> Session | None:
    return {DAY: SESSION, NEXT_DAY: NEXT_SESSION}.get(day)


@pytest.mark.parametrize("ratio", [4.0, 1 / 20])
def test_bear_trap_indicators_rebased_equal_adjusted_history(ratio: float) -> None:
    raw, scaled = _bear_trap(), _bear_trap()
    raw.warmup(minute_bars(OPEN, 60, 100.0), _lookup)
    raw.rebase("SPLT", ratio)
    adjusted_bars = [
        replace(b, volume=b.volume * ratio) for b in minute_bars(OPEN, 60, 100.0, scale=ratio)
    ]
    scaled.warmup(adjusted_bars, _lookup)
    a, b = raw._symbols["SPLT"], scaled._symbols["SPLT"]
    assert a.atr.value == pytest.approx(b.atr.value, rel=1e-9)
    assert a.atr.prev_close == pytest.approx(b.atr.prev_close, rel=1e-12)
    assert a.volume.value == pytest.approx(b.volume.value, rel=1e-9)
    for name in ("open", "high", "low", "prior_high", "prior_low"):
        assert getattr(a.session, name) == pytest.approx(getattr(b.session, name), rel=1e-12)
    # The next session's bars meet the same indicators: the same values after each bar.
    for bar in minute_bars(NEXT_OPEN, 30, 100.0 / ratio):
        a.update(bar, NEXT_DAY)
        b.update(bar, NEXT_DAY)
        assert a.atr.value == pytest.approx(b.atr.value, rel=1e-9)
        assert a.volume.value == pytest.approx(b.volume.value, rel=1e-9)


def _open_plan() -> TradePlan:
    plan = TradePlan.at_signal(
        signal_time=OPEN,
        session_date=DAY,
        support=90.0,
        stop=88.0,
        session_high=110.0,
        tp1_target_fraction=0.5,
    )
    plan.add_entry_fill(30, 92.0, OPEN, 0.5)
    plan.set_resting_stop(OPEN, 30, 88.0)
    return plan


@pytest.mark.parametrize(("ratio", "shares"), [(4.0, 120), (1 / 20, 1)])
def test_an_open_trade_plan_is_rebased(ratio: float, shares: int) -> None:
    plan = _open_plan()
    before = plan.values()
    rebase_plan(plan, ratio)
    for key in ("entry", "stop", "support", "tp1", "tp2"):
        assert plan.values()[key] == pytest.approx(before[key] / ratio)
    assert plan.session_high == pytest.approx(110.0 / ratio)
    assert (plan.position, plan.entry_qty) == (shares, shares)
    assert plan.stop_order == {
        "signal_time": OPEN.isoformat(),
        "qty": shares,
        "price": pytest.approx(88.0 / ratio),
    }


def test_bear_trap_replaces_its_canceled_stop_at_the_rebased_level() -> None:
    strategy = _bear_trap()
    st = SymbolState(14, 20)
    st.plan = _open_plan()
    strategy._symbols["SPLT"] = st
    strategy.rebase("SPLT", 4.0)
    # The broker canceled the stop before the open; the ledger's view says so at sync.
    from strategies.api.model import HoldingView

    step = strategy.sync({"SPLT": HoldingView(symbol="SPLT", position=120)}, NEXT_OPEN)
    (intent,) = step.intents
    assert (intent.action, intent.qty) == ("place_stop", 120)
    assert intent.stop_price == pytest.approx(22.0)
