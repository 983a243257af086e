"""One trial of a sweep: a ``magellan backtest`` of one strategy with the trial's parameters put
over the base config, scored by the backtest's own metrics (``run_backtest``: the same
kernel, strategy code and ``summary.json``; no file written).

``run_trial`` never raises: a backtest that raises is a ``failed`` result carrying the
exception's one-line message, so that one bad setting never stops a sweep.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from magellan_core.corporate_actions import CorporateAction
from magellan_core.timeframes import TIMEFRAMES
from magellan_daemon.backtest import report
from magellan_daemon.backtest.bars_csv import symbol_files
from magellan_daemon.backtest.metrics import Trade
from magellan_daemon.backtest.outcome import run_backtest
from magellan_daemon.config.loading import StrategyConfig
from magellan_daemon.research.space import Scalar
from strategies.registry import descriptor

Status = Literal["ok", "failed", "skipped"]


@dataclass(frozen=True, slots=True)
class TrialSetup:
    """What every trial of a sweep shares: the bars, the range, the base strategy config."""

    bars: Path
    base: StrategyConfig
    start: date
    end: date
    cash: Decimal
    actions: tuple[CorporateAction, ...] = ()

    def over(self, start: date, end: date) -> TrialSetup:
        """The same trials over another range (a walk-forward window)."""
        return dataclasses.replace(self, start=start, end=end)

    def files(self) -> list[Path]:
        """Every bar file a trial can read: the strategy's symbols in every timeframe (its
        own bars, and the exchange's prices for its fills)."""
        spec = self.base.spec
        found: list[Path] = []
        for timeframe in TIMEFRAMES:
            files = symbol_files(self.bars, timeframe)
            found += (
                files.values()
                if spec.whole_market
                else [files[s] for s in spec.symbols if s in files]
            )
        return found


@dataclass(frozen=True, slots=True)
class TrialTask:
    """One setting to run: its number in the study and its parameter values."""

    number: int
    values: dict[str, Scalar]
    params: BaseModel  # the base parameters with ``values`` put in, as the model validated them
    keep_trades: bool = False  # a walk-forward test: its closed trades go into the stitched curve


@dataclass(frozen=True, slots=True)
class TrialResult:
    """What a trial left: its metrics (``summary.json``'s ``run.metrics``) when ``ok``."""

    number: int
    status: Status
    seconds: float
    values: dict[str, Scalar]
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    equity: tuple[tuple[str, float], ...] = ()  # (New York date, equity at its close)
    trades: tuple[Trade, ...] = ()  # closed trades, when the task keeps them


def skipped(number: int, values: dict[str, Scalar], reason: str) -> TrialResult:
    """A combination the strategy's parameter model refuses: counted, never run."""
    return TrialResult(number, "skipped", 0.0, values, error=reason)


def run_trial(setup: TrialSetup, task: TrialTask) -> TrialResult:
    """Backtest ``task``'s setting over ``setup``'s range; never raises."""
    started = time.perf_counter()
    try:
        config = dataclasses.replace(
            setup.base,
            enabled=True,
            params=task.params,
            spec=descriptor(setup.base.name).resolve(task.params),
        )
        outcome = asyncio.run(
            run_backtest(
                setup.bars,
                setup.start,
                setup.end,
                {setup.base.name: config},
                setup.cash,
                setup.actions,
            )
        )
    except Exception as exc:  # any failure of one setting is that trial's, not the sweep's
        seconds = time.perf_counter() - started
        return TrialResult(task.number, "failed", seconds, task.values, error=one_line(exc))
    run = outcome.summary["run"]
    trades = report.round_trips(outcome.stack.ledger) if task.keep_trades else []
    return TrialResult(
        task.number,
        "ok",
        time.perf_counter() - started,
        task.values,
        metrics=dict(run["metrics"]),
        equity=tuple(run["equity_per_day"].items()),
        trades=tuple(trades),
    )


def one_line(exc: BaseException) -> str:
    """``Type: message``, on one line (for ``trials.csv``'s ``error``)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
