"""``magellan backtest`` with the corporate-actions file: a position carried through a split
(Daily Trend holds TSLA across its 5:1 of 2020-08-31 and sells the post-split shares), the
ledger equal to the exchange, and the trades on raw bars plus the file equal to those on a
copy adjusted for the splits (time, side and reason; quantities and prices on the scale of
their day); Bear Trap across WKHS's 1-for-20 likewise."""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from magellan_core.clock import VirtualClock
from magellan_core.corporate_actions import load_corporate_actions
from magellan_daemon.backtest.run import drive, load_timelines
from magellan_daemon.backtest.stack import ACCOUNT, build_stack
from magellan_daemon.cli.main import main
from magellan_daemon.config.loading import load_config
from magellan_sim.market.calendar import SessionCalendar
from tests.adjusted_bars import adjusted_copy, raw_copy
from tests.conftest import REPO

pytestmark = pytest.mark.timeout(240)
CONFIG = REPO / "configs" / "magellan.toml"
DAILY = ("AAPL", "TSLA")


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _backtest(bars: Path, out: Path, strategy: str, start: str, end: str) -> list[dict[str, str]]:
    argv = ["backtest", "--bars", str(bars), "--start", start, "--end", end, "--quiet"]
    assert main([*argv, "--strategy", strategy, "--config", str(CONFIG), "--out", str(out)]) == 0
    return _rows(out / "trades.csv")


def _same_trades(with_file: list[dict[str, str]], adjusted: list[dict[str, str]]) -> None:
    def key(t: dict[str, str]) -> tuple[str, ...]:
        return t["symbol"], t["side"], t["signal_time"], t["filled_at"], t["reason"]

    assert [key(t) for t in with_file] == [key(t) for t in adjusted]


@pytest.fixture(scope="module")
def daily_dirs(bars_dir: Path, tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("daily")
    actions = bars_dir.parent / "corporate_actions.csv"
    raw = root / "raw" / "bars"
    raw_copy(bars_dir, raw, "1Day", DAILY)
    (raw.parent / "corporate_actions.csv").write_text(actions.read_text())
    adjusted = root / "adjusted" / "bars"
    adjusted_copy(bars_dir, adjusted, "1Day", DAILY, load_corporate_actions(actions))
    return raw, adjusted


def test_daily_trend_carries_tsla_through_its_split(daily_dirs, tmp_path: Path) -> None:
    raw, adjusted = daily_dirs
    with_file = _backtest(raw, tmp_path / "file", "daily_trend", "2020-07-01", "2020-11-30")
    on_adjusted = _backtest(adjusted, tmp_path / "adj", "daily_trend", "2020-07-01", "2020-11-30")
    _same_trades(with_file, on_adjusted)
    tsla = [(t["side"], t["qty"], t["filled_at"][:10]) for t in with_file if t["symbol"] == "TSLA"]
    # bought before the split at the raw scale, sold after it: five times the shares
    assert tsla[:2] == [("buy", "8", "2020-07-02"), ("sell", "40", "2020-11-02")]


async def test_the_ledger_equals_the_exchange_after_the_split(daily_dirs) -> None:
    raw, _ = daily_dirs
    strategies = {"daily_trend": load_config(CONFIG).strategies["daily_trend"]}
    start, end = date(2020, 8, 3), date(2020, 9, 4)
    calendar = SessionCalendar()
    clock = VirtualClock(datetime(2020, 8, 3, 4, 0, tzinfo=UTC), speed=0)
    actions = load_corporate_actions(raw.parent / "corporate_actions.csv")
    stack = build_stack(raw, strategies, clock, calendar, Decimal(100_000), actions)
    await drive(stack, load_timelines(stack, strategies, raw, start, end), start, end)
    broker = {
        p["symbol"]: Decimal(p["qty"]) for p in stack.exchange.accounts.list_positions(ACCOUNT)
    }
    assert stack.ledger.net_positions(ACCOUNT) == broker
    assert broker  # AAPL, held from before its 4:1 split
    splits = stack.exchange.accounts.activities(ACCOUNT, activity_types=["SPLIT"], direction="asc")
    assert {a["symbol"] for a in splits} == set(broker) & {"AAPL", "TSLA"}


def test_bear_trap_across_the_wkhs_reverse_split(bars_dir: Path, tmp_path: Path) -> None:
    actions = bars_dir.parent / "corporate_actions.csv"
    raw = tmp_path / "raw" / "bars"
    raw_copy(bars_dir, raw, "1Min", ["WKHS"])
    (raw.parent / "corporate_actions.csv").write_text(actions.read_text())
    adjusted = tmp_path / "adjusted" / "bars"
    adjusted_copy(bars_dir, adjusted, "1Min", ["WKHS"], load_corporate_actions(actions))
    with_file = _backtest(raw, tmp_path / "file", "bear_trap", "2024-06-13", "2024-06-18")
    on_adjusted = _backtest(adjusted, tmp_path / "adj", "bear_trap", "2024-06-13", "2024-06-18")
    _same_trades(with_file, on_adjusted)
    assert [t["filled_at"][:10] for t in with_file if t["side"] == "buy"] == [
        "2024-06-17",
        "2024-06-18",
    ]
    assert [t["qty"] for t in with_file] == [t["qty"] for t in on_adjusted]
