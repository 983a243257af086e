"""``magellan backtest``: run configured strategies over a bars directory on the daemon's own
router, order path and ledger against the simulator's exchange core (see ``run.py``), and
write ``trades.csv``, ``summary.json``, ``equity.png`` and ``pnl_by_strategy.png``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from magellan_daemon.backtest import charts, report
from magellan_daemon.backtest.run import drive, load_timelines
from magellan_daemon.backtest.stack import build_stack
from magellan_daemon.clock import VirtualClock
from magellan_daemon.config import StrategyConfig, load_config
from magellan_daemon.corporate_actions import (
    CorporateAction,
    CorporateActionsFileError,
    corporate_actions_path,
    load_corporate_actions,
)
from magellan_daemon.errors import ConfigError
from magellan_daemon.sim.calendar import SessionCalendar
from magellan_daemon.timefmt import NEW_YORK
from strategies.registry import REGISTRY

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "magellan.toml"
log = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``magellan backtest`` arguments."""
    parser.add_argument("--bars", required=True, type=Path, help="folder with 1Day/ 1Hour/ 1Min/")
    parser.add_argument(
        "--start", required=True, type=date.fromisoformat, help="first New York date (incl.)"
    )
    parser.add_argument(
        "--end", required=True, type=date.fromisoformat, help="last New York date (incl.)"
    )
    parser.add_argument(
        "--strategy",
        action="append",
        choices=list(REGISTRY),
        help="a strategy to run (repeatable; default: every enabled one in the config)",
    )
    parser.add_argument(
        "--config", type=Path, default=DEFAULT_CONFIG, help="magellan.toml (default: %(default)s)"
    )
    parser.add_argument("--out", required=True, type=Path, help="folder for the outputs")
    parser.add_argument(
        "--cash", type=Decimal, default=Decimal(100_000), help="starting cash (default 100000)"
    )
    parser.add_argument(
        "--corporate-actions",
        type=Path,
        default=None,
        metavar="FILE",
        help="splits and dividends the exchange and the daemon apply (default: "
        "corporate_actions.csv beside the --bars folder, when present)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar nor table")


def _chosen(args: argparse.Namespace) -> dict[str, StrategyConfig]:
    config = load_config(args.config)
    names = args.strategy or [n for n, s in config.strategies.items() if s.enabled]
    missing = [n for n in names if n not in config.strategies]
    if missing:
        raise ConfigError(args.config, "strategies", f"not configured: {', '.join(missing)}")
    return {n: config.strategies[n] for n in names}


def run(args: argparse.Namespace) -> int:
    """Run the backtest; 0 on success, 2 on bad usage or configuration."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not args.bars.is_dir():
        print(f"magellan backtest: --bars {args.bars} is not a directory", file=sys.stderr)
        return 2
    if args.end < args.start:
        print("magellan backtest: --end is before --start", file=sys.stderr)
        return 2
    try:
        strategies = _chosen(args)
        path = corporate_actions_path(args.bars, args.corporate_actions)
        actions = load_corporate_actions(path) if path is not None else ()
    except (ConfigError, CorporateActionsFileError) as err:
        print(f"magellan backtest: {err}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    summary = asyncio.run(backtest(args, strategies, actions))
    if not args.quiet:
        _print_table(summary)
    return 0


async def backtest(
    args: argparse.Namespace,
    strategies: dict[str, StrategyConfig],
    actions: tuple[CorporateAction, ...] = (),
) -> dict:
    """The whole run: build, drive, report; returns the summary."""
    calendar = SessionCalendar()
    midnight = datetime.combine(args.start, time(0, 0), tzinfo=NEW_YORK)
    clock = VirtualClock(midnight, speed=0)
    stack = build_stack(args.bars, strategies, clock, calendar, args.cash, actions)
    timelines = load_timelines(stack, strategies, args.bars, args.start, args.end)
    with Progress(
        TextColumn("backtest"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} steps"),
        TimeRemainingColumn(),
        disable=args.quiet,
        transient=True,
    ) as bar:
        task = bar.add_task("steps", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        stats = await drive(stack, timelines, args.start, args.end, progress)
    report.write_trades(args.out / "trades.csv", report.trade_rows(stack.ledger))
    summary = report.summarise(stack.ledger, stats)
    report.write_summary(args.out / "summary.json", summary)
    curves = {name: report.realised_curve(stack.ledger, name) for name in strategies}
    charts.equity_chart(args.out / "equity.png", float(args.cash), curves)
    charts.pnl_chart(args.out / "pnl_by_strategy.png", curves)
    return summary


def _print_table(summary: dict) -> None:
    table = Table(title="magellan backtest")
    for column in ("strategy", "trades", "win rate", "P&L", "max DD", "exposure", "bars", "bars/s"):
        table.add_column(column, justify="right" if column != "strategy" else "left")
    for name, s in summary["strategies"].items():
        win = "-" if s["win_rate"] is None else f"{100 * s['win_rate']:.0f}%"
        speed = "-" if s["bars_per_second"] is None else f"{s['bars_per_second']:,.0f}"
        table.add_row(
            name,
            str(s["trades"]),
            win,
            f"{s['total_pnl']:,.2f}",
            f"{s['max_drawdown']:,.2f}",
            f"{100 * s['exposure']:.1f}%",
            f"{s['bars_processed']:,}",
            speed,
        )
    Console().print(table)
