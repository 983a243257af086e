"""One backtest from bars to its summary, with no file written: what ``magellan backtest``
writes its files from, and what each trial of ``magellan sweep`` scores (the same kernel,
strategy code and metrics, so a trial equals the backtest of the same settings)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

from magellan_core.clock import VirtualClock
from magellan_core.corporate_actions import CorporateAction
from magellan_daemon.backtest import report
from magellan_daemon.backtest.marks import CloseMarks
from magellan_daemon.backtest.run import drive, load_timelines
from magellan_daemon.backtest.stack import Stack, build_stack
from magellan_daemon.config.loading import StrategyConfig
from magellan_daemon.timefmt import NEW_YORK
from magellan_sim.market.calendar import SessionCalendar


@dataclass(frozen=True, slots=True)
class Outcome:
    """A finished backtest: ``summary.json``'s content and the stack it traded on."""

    summary: dict[str, Any]
    stack: Stack


async def run_backtest(
    bars: Path,
    start: date,
    end: date,
    strategies: dict[str, StrategyConfig],
    cash: Decimal,
    actions: tuple[CorporateAction, ...] = (),
    progress: Callable[[int, int], None] | None = None,
) -> Outcome:
    """Build the stack, drive it from ``start`` to ``end`` (New York dates, inclusive) and
    summarise its ledger."""
    calendar = SessionCalendar()
    midnight = datetime.combine(start, time(0, 0), tzinfo=NEW_YORK)
    clock = VirtualClock(midnight, speed=0)
    stack = build_stack(bars, strategies, clock, calendar, cash, actions)
    timelines = load_timelines(stack, strategies, bars, start, end)
    window = stack.sessions.between(start, end)
    marks = CloseMarks(stack.ledger, stack.exchange.market, [s.close for s in window])
    stats = await drive(stack, timelines, start, end, progress or _silent, marks)
    summary = report.summarise(
        stack.ledger,
        stats,
        start_cash=float(cash),
        marks=marks.marks,
        market=stack.exchange.market,
        first_open=window[0].open if window else None,
    )
    return Outcome(summary, stack)


def _silent(done: int, total: int) -> None:
    """No progress shown."""
