"""``magellan backtest``: run configured strategies over a bars directory on the daemon's own
router, order path and ledger against the simulator's exchange core (see ``run.py``), and
write ``trades.csv``, ``summary.json`` (with the metrics of ``metrics.py``), ``report.html``,
``equity.png`` and ``pnl_by_strategy.png``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from magellan_core.corporate_actions import (
    CorporateAction,
    CorporateActionsFileError,
    corporate_actions_path,
    load_corporate_actions,
)
from magellan_daemon.backtest import charts, html_report, report
from magellan_daemon.backtest.outcome import run_backtest
from magellan_daemon.config.loading import StrategyConfig, load_config
from magellan_daemon.errors import ConfigError
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
        print_metrics(summary)
    return 0


async def backtest(
    args: argparse.Namespace,
    strategies: dict[str, StrategyConfig],
    actions: tuple[CorporateAction, ...] = (),
) -> dict:
    """The whole run: build, drive, report; returns the summary."""
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

        outcome = await run_backtest(
            args.bars, args.start, args.end, strategies, args.cash, actions, progress
        )
    summary, ledger = outcome.summary, outcome.stack.ledger
    report.write_trades(args.out / "trades.csv", report.trade_rows(ledger))
    report.write_summary(args.out / "summary.json", summary)
    equity = [(date.fromisoformat(d), v) for d, v in summary["run"]["equity_per_day"].items()]
    equity_png = charts.equity_chart(args.out / "equity.png", float(args.cash), equity)
    title = f"magellan backtest {args.start} to {args.end}: {', '.join(strategies)}"
    trades = report.round_trips(ledger)
    html_report.write(args.out / "report.html", summary, trades, title, equity_png)
    curves = {name: report.realised_curve(ledger, name) for name in strategies}
    charts.pnl_chart(args.out / "pnl_by_strategy.png", curves)
    return summary


KEY_METRICS = (
    "end_equity",
    "total_return_pct",
    "cagr_pct",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown_pct",
    "max_drawdown_usd",
    "profit_factor",
    "expectancy_usd",
    "sqn",
    "win_rate",
    "trades",
    "exposure",
    "market_change_pct",
)


def print_metrics(summary: dict[str, Any]) -> None:
    """The key metrics, a column for the run and one per strategy (narrow terminals too)."""
    names = list(summary["strategies"])
    table = Table(title="magellan backtest")
    table.add_column("metric")
    for column in ("run", *names):
        table.add_column(column, justify="right")
    columns = [summary["run"]["metrics"]] + [summary["strategies"][n]["metrics"] for n in names]
    for key in KEY_METRICS:
        table.add_row(key, *(html_report.fmt(key, c[key]) for c in columns))
    drawdowns = [
        f"{c['max_drawdown_start'] or '-'}..{c['max_drawdown_end'] or '-'}" for c in columns
    ]
    table.add_row("max_drawdown dates", *drawdowns)
    speeds = [summary["strategies"][n]["bars_per_second"] for n in names]
    table.add_row("bars/s", "", *("-" if v is None else f"{v:,.0f}" for v in speeds))
    Console().print(table)
