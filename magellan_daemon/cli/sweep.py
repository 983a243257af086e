"""``magellan sweep``: a strategy's parameters swept over recorded bars, every trial a
``magellan backtest`` (``research/``), on a local process pool or a Ray cluster, optionally
validated walk-forward. Bad input exits 2 with one line before any trial runs; a sweep
stopped at any moment resumes from ``--out`` with the same command."""

from __future__ import annotations

import argparse
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
    CorporateActionsFileError,
    corporate_actions_path,
    load_corporate_actions,
)
from magellan_daemon.backtest.html_report import fmt
from magellan_daemon.config.loading import StrategyConfig, load_config
from magellan_daemon.errors import ConfigError
from magellan_daemon.research import walk_forward
from magellan_daemon.research.local_pool import LocalPool, cores
from magellan_daemon.research.objective import OBJECTIVES, Objective
from magellan_daemon.research.pool import TrialPool
from magellan_daemon.research.record import StudyMismatch, claim, release
from magellan_daemon.research.space import SEARCHES, SpaceError, format_value, load_space
from magellan_daemon.research.sweep import SweepPlan, run_sweep
from magellan_daemon.research.trial import TrialResult, TrialSetup
from strategies.registry import REGISTRY

SHARED_BARS = ".bars"  # in --out: the local pool's bars, mapped by its workers
DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "magellan.toml"
log = logging.getLogger(__name__)


class UsageError(Exception):
    """Bad input: printed as one line, exit 2."""


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``magellan sweep`` arguments."""
    add = parser.add_argument
    add("--bars", required=True, type=Path, help="folder with 1Day/ 1Hour/ 1Min/")
    add("--start", required=True, type=date.fromisoformat, help="first New York date (incl.)")
    add("--end", required=True, type=date.fromisoformat, help="last New York date (incl.)")
    add("--strategy", required=True, choices=list(REGISTRY), help="the strategy swept")
    add("--space", required=True, type=Path, help="TOML: the parameters and their values")
    add("--out", required=True, type=Path, help="folder for the outputs (and to resume from)")
    add("--config", type=Path, default=DEFAULT_CONFIG, help="base config (default: %(default)s)")
    add("--cash", type=Decimal, default=Decimal(100_000), help="starting cash (default 100000)")
    add("--search", choices=SEARCHES, default="grid", help="grid (default) or optuna (TPE)")
    add("--trials", type=int, default=100, help="optuna's trial count (default 100)")
    add("--seed", type=int, default=0, help="optuna's seed (default 0)")
    add(
        "--objective",
        choices=OBJECTIVES,
        default="sharpe",
        metavar="METRIC",
        help="a key of the backtest's metrics (default sharpe; losses such as "
        "max_drawdown_pct are minimised, the rest maximised)",
    )
    add("--min-trades", type=int, default=10, help="fewest closed trades of a best trial (10)")
    add("--workers", type=int, default=None, help="trials at once (default: this machine's cores)")
    add("--ray-address", default=None, metavar="ADDR", help="run on this Ray cluster (auto, ...)")
    add("--walk-forward", default=None, metavar="TRAIN:TEST", help="e.g. 3M:1M (months)")
    add(
        "--corporate-actions",
        type=Path,
        default=None,
        metavar="FILE",
        help="as for magellan backtest (default: corporate_actions.csv beside --bars)",
    )
    add("--quiet", action="store_true", help="no progress bar nor table")


def run(args: argparse.Namespace) -> int:
    """Run the sweep; 0 done, 2 bad input, 130 interrupted (resume with the same command)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("magellan_daemon.research").setLevel(logging.INFO)
    try:
        plan = _plan(args)
        pool = _pool(args, plan)
    except (
        UsageError,
        ConfigError,
        SpaceError,
        CorporateActionsFileError,
        walk_forward.WalkForwardError,
    ) as exc:
        print(f"magellan sweep: {exc}", file=sys.stderr)
        return 2
    try:
        claim(plan.out, plan.identity(pool.workers))
        log.info("%s: %s", plan.out, pool.where)
        pool.start()
        with ProgressListener(plan.objective, args.quiet) as listener:
            summary = run_sweep(plan, pool, listener)
    except StudyMismatch as exc:  # --out holds another study: nothing of it is touched
        print(f"magellan sweep: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"magellan sweep: interrupted; finished trials are kept in {plan.out}: "
            "the same command resumes",
            file=sys.stderr,
        )
        return 130
    finally:
        pool.close()
        release(plan.out)
    if not args.quiet:
        print_summary(summary)
    return 0


def _plan(args: argparse.Namespace) -> SweepPlan:
    if not args.bars.is_dir():
        raise UsageError(f"--bars {args.bars} is not a directory")
    if args.end < args.start:
        raise UsageError("--end is before --start")
    for flag, value, low in (
        ("--trials", args.trials, 1),
        ("--min-trades", args.min_trades, 0),
        ("--workers", args.workers, 1),
    ):
        if value is not None and value < low:
            raise UsageError(f"{flag} must be at least {low}, got {value}")
    base = _base(args)
    space = load_space(args.space, args.strategy, base.params, args.search)
    path = corporate_actions_path(args.bars, args.corporate_actions)
    actions = load_corporate_actions(path) if path is not None else ()
    windows: tuple[walk_forward.Window, ...] = ()
    if args.walk_forward is not None:
        train, test = walk_forward.parse(args.walk_forward)
        windows = tuple(walk_forward.windows(args.start, args.end, train, test))
    return SweepPlan(
        out=args.out,
        space=space,
        setup=TrialSetup(args.bars, base, args.start, args.end, args.cash, actions),
        objective=Objective(args.objective, args.min_trades),
        search=args.search,
        trials=args.trials,
        seed=args.seed,
        windows=windows,
        walk_forward=args.walk_forward,
        command=tuple(getattr(args, "_argv", sys.argv)),
    )


def _base(args: argparse.Namespace) -> StrategyConfig:
    config = load_config(args.config)
    if args.strategy not in config.strategies:
        raise ConfigError(args.config, "strategies", f"not configured: {args.strategy}")
    return config.strategies[args.strategy]


def _pool(args: argparse.Namespace, plan: SweepPlan) -> TrialPool:
    files = plan.setup.files()
    if args.ray_address is None:
        return LocalPool(args.workers or cores(), files, plan.out / SHARED_BARS)
    from magellan_daemon.research.ray_pool import RayPool, RayUnavailable

    try:
        return RayPool(args.ray_address, files, args.workers)
    except RayUnavailable as exc:
        raise UsageError(str(exc)) from None


class ProgressListener:
    """The progress bar: trials done, the best so far with its parameters, time left."""

    def __init__(self, objective: Objective, quiet: bool) -> None:
        self._objective = objective
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[best]}"),
            disable=quiet,
        )
        self._task: Any = None
        self._best: TrialResult | None = None

    def __enter__(self) -> ProgressListener:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def begin(self, label: str, total: int, kept: list[TrialResult]) -> None:
        if self._task is not None:
            self._progress.update(self._task, visible=False)
        self._best = None
        for result in kept:
            self._consider(result)
        self._task = self._progress.add_task(
            label, total=total, completed=len(kept), best=self._best_text()
        )

    def finished(self, result: TrialResult) -> None:
        self._consider(result)
        self._progress.update(self._task, advance=1, best=self._best_text())

    def _consider(self, result: TrialResult) -> None:
        ranked = self._objective.ranked([r for r in (self._best, result) if r is not None])
        self._best = ranked[0] if ranked else self._best

    def _best_text(self) -> str:
        best = self._best
        if best is None:
            return "best: none yet"
        values = ", ".join(f"{k}={format_value(v)}" for k, v in best.values.items())
        value = fmt(self._objective.key, self._objective.value(best))
        return f"best {self._objective.key} {value} (trial {best.number}: {values})"


def print_summary(summary: dict[str, Any]) -> None:
    """The counts, and the top trials as a table (from ``sweep.json``'s content)."""
    console = Console()
    c = summary["counts"]
    console.print(
        f"{c['ok']} ok, {c['failed']} failed, {c['skipped']} skipped; "
        f"{summary['trials_run']} run in {summary['wall_seconds']:.1f} s "
        f"({summary['trials_per_second'] or 0:.2f} trials/s) on {summary['where']}"
    )
    walk = summary.get("walk_forward")
    if walk is not None:
        oos = walk["out_of_sample"]
        console.print(
            f"walk-forward {walk['spec']}: {len(walk['windows'])} windows, out-of-sample "
            f"return {fmt('total_return_pct', oos['total_return_pct'])}, sharpe "
            f"{fmt('sharpe', oos['sharpe'])}, efficiency {fmt('x', walk['efficiency'])}"
        )
    top = summary.get("top") or []
    if not top:
        console.print("no trial counts as best")
        return
    key = summary["objective"]["key"]
    table = Table(title=f"top {len(top)} by {key} ({summary['objective']['direction']})")
    names = list(top[0]["params"])
    for column in ("rank", "trial", *names, key, "trades", "total_return_pct", "max_drawdown_pct"):
        table.add_column(column, justify="right")
    for rank, row in enumerate(top, start=1):
        m = row["metrics"]
        table.add_row(
            str(rank),
            str(row["trial"]),
            *(format_value(row["params"][n]) for n in names),
            fmt(key, m.get(key)),
            fmt("trades", m.get("trades")),
            fmt("total_return_pct", m.get("total_return_pct")),
            fmt("max_drawdown_pct", m.get("max_drawdown_pct")),
        )
    console.print(table)
