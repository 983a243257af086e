"""The golden backtests: which strategy, config, bars and window each case runs, and how
its outputs are made comparable (``summary.json`` without its wall-clock fields).

``python -m tests.backtest.golden_cases [NAME...]`` (re)writes the golden files from the
current engine; the test (``test_backtest_golden.py``) runs the same cases and compares."""

from __future__ import annotations

import gzip
import json
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from magellan_daemon.cli.main import main
from tests.conftest import BARS_DIR, REPO

GOLDEN = Path(__file__).resolve().parent / "golden"
WALL_CLOCK = ("seconds", "bars_per_second")  # the only values that may differ between runs


@dataclass(frozen=True)
class Case:
    name: str
    strategy: str
    config: Path
    timeframe: str
    symbols: tuple[str, ...] | None  # None: every file of the timeframe
    start: str
    end: str
    long: bool = False


CASES = (
    # Bear Trap over the weeks of May 2024 that hold most crash days (AMC, CGC, GME, PLUG,
    # WKHS): traps set, entries, stops, exits on real bars.
    Case(
        "bear_trap_may2024",
        "bear_trap",
        REPO / "configs" / "magellan.toml",
        "1Min",
        None,
        "2024-05-01",
        "2024-05-24",
    ),
    # Hourly Swing's rule on 1Min bars trades every few minutes: the router, the order path,
    # the exchange and the ledger at work on every other bar.
    Case(
        "hourly_swing_1min",
        "hourly_swing",
        REPO / "bench" / "configs" / "magellan.toml",
        "1Min",
        ("GME", "MULN", "WKHS"),
        "2024-11-12",
        "2024-11-15",
    ),
    # Daily Trend on daily bars over a year (orders at the next open).
    Case(
        "daily_trend_2023",
        "daily_trend",
        REPO / "configs" / "magellan.toml",
        "1Day",
        None,
        "2023-01-01",
        "2023-12-31",
    ),
    # Every shared 1Min bar, both strategies (pytest -m long).
    Case(
        "bear_trap_all",
        "bear_trap",
        REPO / "configs" / "magellan.toml",
        "1Min",
        None,
        "2000-01-01",
        "2100-01-01",
        long=True,
    ),
    Case(
        "hourly_swing_all",
        "hourly_swing",
        REPO / "bench" / "configs" / "magellan.toml",
        "1Min",
        None,
        "2000-01-01",
        "2100-01-01",
        long=True,
    ),
)


def bars_for(case: Case, root: Path) -> Path:
    """A bars folder with the case's files: the shared one itself, or links to some of its
    files (never copies)."""
    if case.symbols is None:
        return BARS_DIR
    (root / case.timeframe).mkdir(parents=True, exist_ok=True)
    for symbol in case.symbols:
        src = BARS_DIR / case.timeframe / f"{symbol}.csv.gz"
        (root / case.timeframe / src.name).symlink_to(src)
    corporate = BARS_DIR.parent / "corporate_actions.csv"
    if corporate.exists():
        (root.parent / corporate.name).symlink_to(corporate)
    return root


def comparable(summary: dict[str, Any]) -> dict[str, Any]:
    """``summary`` without its wall-clock values."""
    out = json.loads(json.dumps(summary))
    for section in (out["run"], *out["strategies"].values()):
        for key in WALL_CLOCK:
            section.pop(key, None)
    return out


def run_case(case: Case, work: Path) -> tuple[str, dict[str, Any]]:
    """(trades.csv's text, comparable summary) of one run of ``case`` in ``work``."""
    bars = bars_for(case, work / "data" / "bars")
    out = work / "out"
    argv = ["backtest", "--bars", str(bars), "--start", case.start, "--end", case.end]
    argv += ["--strategy", case.strategy, "--config", str(case.config), "--out", str(out)]
    assert main([*argv, "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    return (out / "trades.csv").read_text(), comparable(summary)


def golden_path(case: Case, kind: str) -> Path:
    """The golden file of ``case``: ``trades.csv`` or ``summary.json``, gzipped for the
    every-bar cases (megabytes as text)."""
    suffix = ".gz" if case.long else ""
    return GOLDEN / f"{case.name}.{kind}{suffix}"


def read_golden(case: Case, kind: str) -> str:
    path = golden_path(case, kind)
    data = path.read_bytes()
    return (gzip.decompress(data) if case.long else data).decode()


def write_golden(case: Case) -> None:
    with tempfile.TemporaryDirectory() as work:
        trades, summary = run_case(case, Path(work))
    text = json.dumps(summary, indent=2, sort_keys=True) + "\n"
    for kind, content in (("trades.csv", trades), ("summary.json", text)):
        data = content.encode()
        # mtime 0: the same content gives the same bytes
        golden_path(case, kind).write_bytes(gzip.compress(data, 9, mtime=0) if case.long else data)


if __name__ == "__main__":
    GOLDEN.mkdir(exist_ok=True)
    names = set(sys.argv[1:])
    for case in CASES:
        if not names or case.name in names:
            write_golden(case)
            print(case.name, "written", flush=True)
    shutil.rmtree(GOLDEN / "__pycache__", ignore_errors=True)
