"""Backtest throughput: bars per second of ``magellan backtest`` over all of the shared 1Min
bars, with Bear Trap (configs/bear_trap.toml) and with Hourly Swing's rule on the same bars
(period 14, bands 60/40, 100 shares: bench/configs/hourly_swing_1min.toml), which trades
often and so measures the router, order path, exchange and ledger too. The figure is the
driven part (bars in, decisions, orders, fills); the whole command (loading the bar files,
reports) is given as a ratio to it, cold (the parsed bar files' cache empty: a fresh
MAGELLAN_CACHE_DIR) on the first run and cached on the others.

    .venv/bin/python bench/bench_backtest.py [RUNS]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

from common import REPO, SHARED_BARS, machine, median, report

from magellan_daemon.cli import backtest as cli

# (config, runs): the first run of each is cold (empty cache), the others cached.
CASES = {
    "bear_trap": (REPO / "configs" / "magellan.toml", 3),
    "hourly_swing": (REPO / "bench" / "configs" / "magellan.toml", 2),
}


def one_run(strategy: str, config: Path) -> tuple[float, float, int, int]:
    """(driven bars/s, wall seconds of the whole command, bars, fills) of one run."""
    with tempfile.TemporaryDirectory() as out:
        args = argparse.Namespace(
            bars=SHARED_BARS,
            start=date(2000, 1, 1),
            end=date(2100, 1, 1),
            strategy=[strategy],
            config=config,
            out=Path(out),
            cash=Decimal(100_000),
            quiet=True,
        )
        began = time.perf_counter()
        summary = asyncio.run(cli.backtest(args, cli._chosen(args)))
        wall = time.perf_counter() - began
    s = summary["strategies"][strategy]
    return s["bars_per_second"], wall, s["bars_processed"], summary["run"]["fills"]


def main() -> int:
    print(f"# bench_backtest on {machine()}", flush=True)
    for strategy, (config, default_runs) in CASES.items():
        runs = max(2, int(sys.argv[1]) if len(sys.argv) > 1 else default_runs)
        with tempfile.TemporaryDirectory() as cache:
            os.environ["MAGELLAN_CACHE_DIR"] = cache  # the first run parses, the others read
            results = [one_run(strategy, config) for _ in range(runs)]
        os.environ.pop("MAGELLAN_CACHE_DIR")
        bars, fills = results[0][2], results[0][3]
        # whole command / driven part of each run (driven seconds = bars / bars per second)
        ratios = [wall / (n / rate) for rate, wall, n, _ in results]
        report(
            f"backtest {strategy} throughput",
            median(r[0] for r in results),
            "bars/s",
            f"median of {runs}; {bars:,} 1Min bars, {fills:,} fills",
        )
        report(
            f"backtest {strategy} whole command / driven part, cold",
            ratios[0],
            "x",
            f"first run, bar files parsed; whole {results[0][1]:.1f} s",
        )
        report(
            f"backtest {strategy} whole command / driven part, cached",
            median(ratios[1:]),
            "x",
            f"median of {runs - 1}; whole {median(r[1] for r in results[1:]):.1f} s",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
