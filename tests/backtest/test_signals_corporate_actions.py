"""``magellan signals`` with the corporate-actions file: decisions on the raw shared bars plus
the file equal the decisions on a copy of the bars adjusted for every split, decision by
decision (time, action, reason; the prices on the later scale), while the raw bars alone
make the split-day trades the issue names."""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

import pytest

from magellan_core.corporate_actions import SplitTable, load_corporate_actions
from magellan_daemon.cli.main import main
from magellan_daemon.timefmt import NEW_YORK
from tests.adjusted_bars import adjusted_copy, raw_copy

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
DAILY_SPLIT_SYMBOLS = ("AAPL", "AMZN", "GOOGL", "NVDA", "TSLA")


@pytest.fixture(scope="module")
def actions_file(bars_dir: Path) -> Path:
    return bars_dir.parent / "corporate_actions.csv"


def decisions(out: Path) -> list[dict[str, str]]:
    with out.open(newline="") as handle:
        return list(csv.DictReader(handle))


def signals(tmp_path: Path, name: str, *args: str) -> list[dict[str, str]]:
    out = tmp_path / f"{name}.csv"
    assert main(["signals", *args, "--out", str(out)]) == 0
    return decisions(out)


def key(row: dict[str, str]) -> tuple[str, str, str, str]:
    return row["symbol"], row["signal_time"], row["action"], row["reason"]


def assert_same_decisions(
    with_file: list[dict[str, str]], adjusted: list[dict[str, str]], table: SplitTable
) -> None:
    assert [key(r) for r in with_file] == [key(r) for r in adjusted]
    for mine, theirs in zip(with_file, adjusted, strict=True):
        day = datetime.fromisoformat(mine["signal_time"]).astimezone(NEW_YORK).date()
        later = float(table.factor(mine["symbol"], day))  # splits after the decision
        assert float(mine["price"]) / later == pytest.approx(float(theirs["price"]), rel=1e-9)


@pytest.fixture(scope="module")
def daily_dirs(bars_dir: Path, actions_file: Path, tmp_path_factory) -> tuple[Path, Path, Path]:
    """The split symbols' daily bars raw (the file beside them) and adjusted, and a Daily
    Trend config that trades all five (NVDA added to the shipped one)."""
    root = tmp_path_factory.mktemp("daily")
    raw = root / "raw" / "bars"
    raw_copy(bars_dir, raw, "1Day", DAILY_SPLIT_SYMBOLS)
    (raw.parent / "corporate_actions.csv").write_text(actions_file.read_text())
    adjusted = root / "adjusted" / "bars"
    adjusted_copy(
        bars_dir, adjusted, "1Day", DAILY_SPLIT_SYMBOLS, load_corporate_actions(actions_file)
    )
    config = root / "daily_trend.toml"
    config.write_text(
        (CONFIGS / "daily_trend.toml").read_text()
        + "NVDA  = { rsi_period = 21, upper = 55, lower = 45, allocation = 10_000 }\n"
    )
    return raw, adjusted, config


def test_daily_trend_on_raw_bars_and_the_file_equals_the_adjusted_copy(
    daily_dirs, actions_file: Path, tmp_path: Path, capsys
) -> None:
    raw, adjusted, config = daily_dirs
    common = ["--strategy", "daily_trend", "--config", str(config)]
    with_file = signals(tmp_path, "with_file", *common, "--bars", str(raw))  # file beside bars
    assert "re-based the strategy at 7 split ex-dates" in capsys.readouterr().err
    on_adjusted = signals(tmp_path, "adjusted", *common, "--bars", str(adjusted))
    table = SplitTable(load_corporate_actions(actions_file))
    assert len(with_file) > 100
    assert_same_decisions(with_file, on_adjusted, table)

    # without the file (an empty one), the split days are exits no market made
    empty = tmp_path / "none.csv"
    empty.write_text("symbol,type,ex_date,new_rate,old_rate,rate\n")
    raw_only = signals(
        tmp_path, "raw", *common, "--bars", str(raw), "--corporate-actions", str(empty)
    )
    split_day_exits = {
        (r["symbol"], r["signal_time"][:10])
        for r in raw_only
        if r["action"] == "exit" and r["signal_time"][:10] in ("2020-08-31", "2022-06-06")
    }
    assert {
        ("AAPL", "2020-08-31"),
        ("TSLA", "2020-08-31"),
        ("AMZN", "2022-06-06"),
    } <= split_day_exits
    assert {key(r) for r in raw_only} != {key(r) for r in on_adjusted}
    mine = {(r["symbol"], r["signal_time"][:10], r["action"]) for r in with_file}
    assert not {(s, d, "exit") for s, d in split_day_exits} & mine


def test_warm_up_across_a_split_is_adjusted_as_of_the_start(daily_dirs, tmp_path: Path) -> None:
    raw, adjusted, config = daily_dirs
    common = ["--strategy", "daily_trend", "--config", str(config), "--start", "2020-09-01"]
    common += ["--end", "2022-12-31"]
    with_file = signals(tmp_path, "with_file", *common, "--bars", str(raw))
    on_adjusted = signals(tmp_path, "adjusted", *common, "--bars", str(adjusted))
    table = SplitTable(load_corporate_actions(raw.parent / "corporate_actions.csv"))
    assert with_file
    assert_same_decisions(with_file, on_adjusted, table)


def test_hourly_swing_keeps_nvda_through_its_split(
    bars_dir: Path, actions_file: Path, tmp_path: Path
) -> None:
    raw = tmp_path / "raw" / "bars"
    raw_copy(bars_dir, raw, "1Hour", ["NVDA"])
    adjusted = tmp_path / "adjusted" / "bars"
    adjusted_copy(bars_dir, adjusted, "1Hour", ["NVDA"], load_corporate_actions(actions_file))
    common = ["--strategy", "hourly_swing", "--config", str(CONFIGS / "hourly_swing.toml")]
    common += ["--start", "2024-05-01", "--end", "2024-07-31"]
    window = ["--bars", str(raw), "--corporate-actions", str(actions_file)]
    with_file = signals(tmp_path, "with_file", *common, *window)
    on_adjusted = signals(tmp_path, "adjusted", *common, "--bars", str(adjusted))
    assert_same_decisions(with_file, on_adjusted, SplitTable(load_corporate_actions(actions_file)))
    june = [(r["signal_time"], r["action"]) for r in with_file if r["signal_time"] < "2024-06-30"]
    assert ("2024-06-03T14:00:00Z", "enter") in june
    assert not [t for t, action in june if t.startswith("2024-06-10")]
    assert ("2024-06-21T14:00:00Z", "exit") in june

    empty = tmp_path / "none.csv"
    empty.write_text("symbol,type,ex_date,new_rate,old_rate,rate\n")
    raw_only = signals(
        tmp_path, "raw", *common, "--bars", str(raw), "--corporate-actions", str(empty)
    )
    sold = [r for r in raw_only if r["signal_time"] == "2024-06-10T14:00:00Z"]
    assert [(r["action"], r["reason"]) for r in sold] == [("exit", "exit: rsi 5.76 < lower 45")]


def test_bear_trap_across_the_wkhs_reverse_split(
    bars_dir: Path, actions_file: Path, tmp_path: Path
) -> None:
    raw = tmp_path / "raw" / "bars"
    raw_copy(bars_dir, raw, "1Min", ["WKHS"])
    adjusted = tmp_path / "adjusted" / "bars"
    adjusted_copy(bars_dir, adjusted, "1Min", ["WKHS"], load_corporate_actions(actions_file))
    common = ["--strategy", "bear_trap", "--config", str(CONFIGS / "bear_trap.toml")]
    common += ["--start", "2024-06-03", "--end", "2024-06-28"]
    window = ["--bars", str(raw), "--corporate-actions", str(actions_file)]
    with_file = signals(tmp_path, "with_file", *common, *window)
    on_adjusted = signals(tmp_path, "adjusted", *common, "--bars", str(adjusted))
    assert_same_decisions(with_file, on_adjusted, SplitTable(load_corporate_actions(actions_file)))
    assert [r["signal_time"][:10] for r in with_file if r["action"] == "enter"][:2] == [
        "2024-06-17",
        "2024-06-18",
    ]


@pytest.mark.parametrize("command", ["signals", "backtest"])
def test_a_bad_row_exits_2_naming_the_line(
    command: str, bars_dir: Path, tmp_path: Path, capsys
) -> None:
    bad = tmp_path / "corporate_actions.csv"
    bad.write_text(
        "symbol,type,ex_date,new_rate,old_rate,rate\n"
        "AAPL,forward_split,2020-08-31,4,1,\n"
        "TSLA,forward_split,2020-08-31,5,1,\n"
        "AMZN,forward_split,2022-06-6,20,1,\n"
    )
    args = [command, "--bars", str(bars_dir), "--corporate-actions", str(bad)]
    args += ["--start", "2024-01-02", "--end", "2024-01-03", "--out", str(tmp_path / "out")]
    args += ["--strategy", "daily_trend"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"magellan {command}: {bad}: line 4: ex_date '2022-06-6' is not an ISO date" in err


def test_magellan_run_in_sim_mode_refuses_a_bad_file_beside_its_bars(
    bars_dir: Path, tmp_path: Path, capsys
) -> None:
    bars = tmp_path / "bars"
    raw_copy(bars_dir, bars, "1Day", ["SPY"])
    bad = tmp_path / "corporate_actions.csv"
    bad.write_text("symbol,type,ex_date,new_rate,old_rate,rate\nSPY,dividend,2024-06-21,,,1.7\n")
    args = ["run", "--sim", "--sim-bars", str(bars), "--config", str(CONFIGS / "magellan.toml")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"magellan run: {bad}: line 2: type 'dividend' is not one of" in err
