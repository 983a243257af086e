"""Bear Trap on the real crash days (``crash_days.csv``, 1Min bars), simulated with fills at
the next bar's open and a resting stop order that fills at ``min(open, stop)``.

Every entry is checked against the six conditions recomputed here from the raw CSV rows with
pandas, independently of the strategy's own numbers; no entry on a day that never fell 15%;
stops below the entry; flat by close - 5 min, including the 13:00 close of 2024-11-29.
"""

from __future__ import annotations

import csv
import warnings
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import exchange_calendars as xcals
import pandas as pd
import pytest

from magellan_daemon.backtest.bars_csv import read_bars
from strategies.api.model import Bar, Intent, OrderUpdate, RiskBased
from strategies.api.session import Session
from strategies.bear_trap.strategy import BearTrap, BearTrapParams
from strategies.lib.sizing import shares_for

NEW_YORK = ZoneInfo("America/New_York")
EQUITY = 100_000.0
EOD = timedelta(minutes=5)
SYMBOLS = ("AMC", "CGC", "GME", "MARA", "MULN", "PLUG", "RIOT", "SNDL", "TLRY", "WKHS")


@pytest.fixture(scope="module")
def sessions() -> dict[date, Session]:
    with warnings.catch_warnings():
        # exchange_calendars 4.13 itself triggers a pandas 3.1 deprecation warning.
        warnings.simplefilter("ignore", pd.errors.Pandas4Warning)
        schedule = xcals.get_calendar("XNYS", start="2024-03-01", end="2025-02-28").schedule
    return {
        day.date(): Session(
            date=day.date(),
            open=opened.to_pydatetime().astimezone(UTC),
            close=closed.to_pydatetime().astimezone(UTC),
        )
        for day, opened, closed in zip(
            schedule.index, schedule["open"], schedule["close"], strict=True
        )
    }


@pytest.fixture(scope="module")
def crash_days(bars_dir: Path) -> dict[tuple[str, date], str]:
    """``{(symbol, date): first HH:MM down 15%}`` for the crash days only."""
    with (bars_dir.parent / "crash_days.csv").open(newline="") as handle:
        return {
            (r["symbol"], date.fromisoformat(r["date"])): r["first_minute_down_15pct_et"]
            for r in csv.DictReader(handle)
            if r["first_minute_down_15pct_et"]
        }


@dataclass
class Trade:
    signal: Intent
    fill_time: datetime | None = None
    fill_price: float | None = None
    fill_qty: int = 0
    exits: list[tuple[str, datetime, int]] = field(default_factory=list)


@dataclass
class Driver:
    """Fills market intents at the next bar's open and simulates the resting stop order."""

    bt: BearTrap
    sessions: dict[date, Session]
    queue: list[Intent] = field(default_factory=list)
    stop: dict | None = None
    trades: list[Trade] = field(default_factory=list)
    late_positions: list[tuple[datetime, int]] = field(default_factory=list)

    def run(self, bars: list[Bar]) -> None:
        for bar in bars:
            self._fill_queue(bar)
            self._fill_stop(bar)
            session = self.sessions.get(bar.t.astimezone(NEW_YORK).date())
            late = session is not None and session.close - EOD <= bar.t < session.close
            if late and self.bt.position(bar.symbol):
                self.late_positions.append((bar.t, self.bt.position(bar.symbol)))
            self._apply(self.bt.on_bar(bar, session=session).intents)

    def _update(self, intent: Intent, bar: Bar, kind: str, qty: int, price: float) -> None:
        upd = OrderUpdate(
            strategy=intent.strategy,
            symbol=intent.symbol,
            leg=intent.leg,
            signal_time=intent.signal_time,
            side="buy" if intent.action == "buy" else "sell",
            kind=kind,  # type: ignore[arg-type]
            time=bar.t,
            qty=qty,
            price=price,
            filled_qty=qty,
        )
        self._apply(self.bt.on_order_update(upd).intents)

    def _fill_queue(self, bar: Bar) -> None:
        queue, self.queue = self.queue, []
        for intent in queue:
            if intent.action == "buy":
                assert isinstance(intent.sizing, RiskBased)
                qty = shares_for(intent.sizing, EQUITY)
                trade = Trade(signal=intent)
                self.trades.append(trade)
                if qty == 0:
                    self._update(intent, bar, "rejected", 0, 0.0)
                    continue
                trade.fill_time, trade.fill_price, trade.fill_qty = bar.t, bar.open, qty
                self._update(intent, bar, "fill", qty, bar.open)
            else:
                assert intent.qty is not None
                assert 0 < intent.qty <= self.bt.position(intent.symbol), intent
                self.trades[-1].exits.append((intent.leg, bar.t, intent.qty))
                self._update(intent, bar, "fill", intent.qty, bar.open)

    def _fill_stop(self, bar: Bar) -> None:
        if self.stop is None or bar.low > self.stop["price"]:
            return
        place, qty = self.stop["intent"], self.stop["qty"]
        assert qty <= self.bt.position(bar.symbol)
        self.stop = None
        self.trades[-1].exits.append(("stop", bar.t, qty))
        stop_fill = Intent(
            strategy=place.strategy,
            symbol=place.symbol,
            action="sell",
            leg="protective_stop",
            signal_time=place.signal_time,
            reason="resting stop",
        )
        self._update(stop_fill, bar, "fill", qty, min(bar.open, place.stop_price))

    def _apply(self, intents: tuple[Intent, ...]) -> None:
        for intent in intents:
            if intent.action == "place_stop":
                assert self.stop is None
                self.stop = {"intent": intent, "qty": intent.qty, "price": intent.stop_price}
            elif intent.action == "replace_stop":
                assert self.stop is not None
                self.stop.update(qty=intent.qty, price=intent.stop_price)
            elif intent.action == "cancel_stop":
                assert self.stop is not None
                self.stop = None
            else:
                self.queue.append(intent)


def regular_frame(path: Path, sessions: dict[date, Session]) -> pd.DataFrame:
    """The raw rows of the regular session with the reference indicators (pandas)."""
    df = pd.read_csv(path, index_col="timestamp", parse_dates=["timestamp"])
    day = pd.Series(df.index.tz_convert("America/New_York").date, index=df.index)
    opens = day.map(lambda d: sessions[d].open if d in sessions else pd.NaT)
    closes = day.map(lambda d: sessions[d].close if d in sessions else pd.NaT)
    start = df.index.to_series()
    regular = (start >= opens) & (start + pd.Timedelta(minutes=1) <= closes)
    reg = df[regular.to_numpy()].copy()
    reg["day"] = day[regular]
    by_day = reg.groupby("day")
    reg["session_open"] = by_day["open"].transform("first")
    reg["prior_low"] = by_day["low"].cummin().groupby(reg["day"]).shift(1)
    prev_close = reg["close"].shift(1)
    tr = pd.concat(
        [
            reg["high"] - reg["low"],
            (reg["high"] - prev_close).abs(),
            (reg["low"] - prev_close).abs(),
        ],
        axis=1,
    ).max(axis=1)
    reg["atr"] = tr.rolling(14).mean()
    reg["volume_mean"] = reg["volume"].rolling(20).mean()
    return reg


def check_entry_row(row: pd.Series) -> list[str]:
    """The six entry conditions on one raw row; returns the failing ones."""
    o, h, l, c, v = row["open"], row["high"], row["low"], row["close"], row["volume"]  # noqa: E741
    rng = h - l
    failures = []
    if not (c - row["session_open"]) / row["session_open"] <= -0.15:
        failures.append("drop")
    if not l < row["prior_low"]:
        failures.append("trap")
    if not c > row["prior_low"]:
        failures.append("reclaim")
    if not (rng > 0 and (min(o, c) - l) / rng >= 0.15):
        failures.append("wick")
    if not (rng > 0 and abs(c - o) / rng >= 0.20):
        failures.append("body")
    if not v >= 1.2 * row["volume_mean"] * (1 - 1e-12):
        failures.append("volume")
    return failures


def test_crash_days(
    bars_dir: Path, sessions: dict[date, Session], crash_days: dict[tuple[str, date], str]
) -> None:
    entries = 0
    for symbol in SYMBOLS:
        path = bars_dir / "1Min" / f"{symbol}.csv.gz"
        driver = Driver(BearTrap(BearTrapParams()), sessions)
        driver.run(read_bars(path, symbol, "1Min"))
        assert driver.late_positions == [], (symbol, driver.late_positions[:3])
        assert driver.bt.position(symbol) == 0
        reg = regular_frame(path, sessions)
        for trade in driver.trades:
            entries += 1
            t = trade.signal.signal_time
            row = reg.loc[pd.Timestamp(t)]
            assert check_entry_row(row) == [], (symbol, t)
            ny = t.astimezone(NEW_YORK)
            first_down = crash_days.get((symbol, ny.date()))
            assert first_down is not None, f"{symbol} entered on {ny.date()}, not a crash day"
            assert ny.strftime("%H:%M") >= first_down
            sizing = trade.signal.sizing
            assert isinstance(sizing, RiskBased)
            assert sizing.stop == pytest.approx(row["low"] - 0.45 * row["atr"], abs=1e-9)
            assert sizing.stop < sizing.price == row["close"]
            if trade.fill_price is not None:
                assert sizing.stop < trade.fill_price, (symbol, t)
                assert sum(q for _, _, q in trade.exits) == trade.fill_qty, trade
    # the check above is not vacuous: the crash days do produce entries
    print(f"{entries} entries")
    assert entries >= 3


def test_early_close_2024_11_29_exits_by_12_55(
    bars_dir: Path, sessions: dict[date, Session]
) -> None:
    """No symbol crashed on 2024-11-29, so a crash is appended to GME's real morning."""
    day = date(2024, 11, 29)
    session = sessions[day]
    assert session.close == datetime(2024, 11, 29, 18, 0, tzinfo=UTC)  # 13:00 ET, calendar
    cut = datetime(2024, 11, 29, 17, 30, tzinfo=UTC)  # 12:30 ET
    real = [
        b
        for b in read_bars(bars_dir / "1Min" / "GME.csv.gz", "GME", "1Min")
        if b.t.astimezone(NEW_YORK).date() <= day and b.t <= cut
    ]
    reg = [b for b in real if session.open <= b.t]
    so = reg[0].open
    last = reg[-1]
    big = 100 * max(b.volume for b in reg)

    def mk(minute: int, o: float, h: float, l: float, c: float, v: float) -> Bar:  # noqa: E741
        return Bar(
            symbol="GME",
            timeframe="1Min",
            t=cut + timedelta(minutes=minute),
            open=o,
            high=h,
            low=l,
            close=c,
            volume=v,
        )

    synthetic = [
        mk(1, last.close, last.close, 0.80 * so, 0.81 * so, big),  # the crash
        mk(2, 0.795 * so, 0.83 * so, 0.78 * so, 0.825 * so, big),  # trap + reclaim at 12:32
    ]
    synthetic += [
        mk(m, 0.825 * so, 0.826 * so, 0.824 * so, 0.825 * so, big / 100) for m in range(3, 41)
    ]
    driver = Driver(BearTrap(BearTrapParams()), sessions)
    driver.run(real + synthetic)
    trade = driver.trades[-1]  # GME's earlier crash days traded too
    assert trade.signal.signal_time == cut + timedelta(minutes=2)
    assert trade.fill_qty > 0
    assert trade.exits == [("eod", datetime(2024, 11, 29, 17, 55, tzinfo=UTC), trade.fill_qty)]
    assert driver.late_positions == []
    assert driver.bt.position("GME") == 0
