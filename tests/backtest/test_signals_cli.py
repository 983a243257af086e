"""``magellan signals``: the CSV contract on small slices of the real bars, and speed."""

from __future__ import annotations

import csv
import re
import time
from pathlib import Path

import pytest

from magellan_daemon.cli.main import main

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
HEADER = "strategy,symbol,signal_time,action,price,reason"
ROW = re.compile(
    r"^(daily_trend|hourly_swing|bear_trap),[A-Z]+,\d{4}-\d\d-\d\dT\d\d:\d\d:00Z,"
    r"(enter|exit),\d+(\.\d+)?,.+$"
)


def signals(tmp_path: Path, *args: str) -> tuple[list[str], str]:
    out = tmp_path / "out.csv"
    assert main(["signals", *args, "--out", str(out)]) == 0
    return out.read_text().splitlines(), str(out)


def test_daily_slice_exact_rows(bars_dir: Path, tmp_path: Path, capsys) -> None:
    lines, out = signals(
        tmp_path,
        "--strategy", "daily_trend", "--bars", str(bars_dir),
        "--start", "2020-01-01", "--end", "2020-03-31",
        "--config", str(CONFIGS / "daily_trend.toml"),
    )  # fmt: skip
    assert lines[0] == HEADER
    assert all(ROW.match(line) for line in lines[1:])
    assert lines[1:3] == [
        "daily_trend,AAPL,2020-01-02T05:00:00Z,enter,300.7701,entry: rsi 83.38 > upper 65",
        "daily_trend,AAPL,2020-02-25T05:00:00Z,exit,289.8,exit: rsi 33.58 < lower 35",
    ]
    # EDT dates are stamped 04:00Z (00:00 New York), EST dates 05:00Z.
    assert "daily_trend,AMZN,2020-03-26T04:00:00Z,enter,1954.0,entry: rsi 56.71 > upper 55" in (
        lines
    )
    assert len(lines) == 26
    summary = capsys.readouterr().out.strip().splitlines()
    assert len(summary) == 1
    assert re.match(
        r"daily_trend: 25 decisions \(13 enter, 12 exit\), 9 symbols, 558 bars in [\d.]+ s "
        r"\([\d,]+ bars/s\) -> " + re.escape(out),
        summary[0],
    )


def test_hourly_slice_uses_regular_bars_and_the_default_config(
    bars_dir: Path, tmp_path: Path
) -> None:
    lines, _ = signals(
        tmp_path, "--strategy", "hourly_swing", "--bars", str(bars_dir),
        "--start", "2024-06-01", "--end", "2024-06-30",
    )  # fmt: skip
    assert lines[0] == HEADER and len(lines) > 3
    for row in csv.DictReader(lines):
        hour_utc = int(row["signal_time"][11:13])
        assert 14 <= hour_utc <= 19  # 10:00..15:00 EDT: regular-session hourly bars only


def test_size_zero_is_reported_and_not_filled(bars_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "daily_trend.toml"
    text = (CONFIGS / "daily_trend.toml").read_text()
    config.write_text(text.replace("allocation = 10_000 }", "allocation = 100 }"))
    lines, _ = signals(
        tmp_path, "--strategy", "daily_trend", "--bars", str(bars_dir),
        "--start", "2020-01-01", "--end", "2020-01-10", "--config", str(config),
    )  # fmt: skip
    rows = list(csv.DictReader(lines))
    amzn = [r for r in rows if r["symbol"] == "AMZN"]  # ~1900 $/share: 100 $ buys 0
    assert amzn and all(r["action"] == "enter" and "size 0" in r["reason"] for r in amzn)
    assert len(amzn) > 1  # not filled, so flat again: the next bar decides again
    assert not [r for r in rows if r["action"] == "exit"]


def test_bear_trap_crash_day_reports_stops(bars_dir: Path, tmp_path: Path) -> None:
    lines, _ = signals(
        tmp_path, "--strategy", "bear_trap", "--bars", str(bars_dir),
        "--start", "2024-05-14", "--end", "2024-05-14",
    )  # fmt: skip
    rows = list(csv.DictReader(lines))
    assert {r["symbol"] for r in rows} >= {"AMC", "GME"}
    assert any(r["action"] == "exit" and "stop" in r["reason"] for r in rows)
    for symbol in {r["symbol"] for r in rows}:
        actions = [r["action"] for r in rows if r["symbol"] == symbol]
        assert actions[0] == "enter" and actions[-1] == "exit"


def test_whole_minute_folder_under_a_minute(bars_dir: Path, tmp_path: Path, capsys) -> None:
    began = time.perf_counter()
    signals(tmp_path, "--strategy", "bear_trap", "--bars", str(bars_dir), "--all-symbols")
    elapsed = time.perf_counter() - began
    summary = capsys.readouterr().out.strip()
    assert re.match(r"bear_trap: \d+ decisions .* 10 symbols, \d+ bars in .* bars/s\)", summary)
    assert elapsed < 60


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--start", "2024-02-01", "--end", "2024-01-01"], "--start is after --end"),
        (["--all-symbols"], "daily_trend cannot watch every symbol"),
    ],
)
def test_usage_errors_exit_2(bars_dir: Path, tmp_path: Path, capsys, args, message) -> None:
    argv = ["signals", "--strategy", "daily_trend", "--bars", str(bars_dir), *args]
    assert main([*argv, "--out", str(tmp_path / "x.csv")]) == 2
    assert message in capsys.readouterr().err
