"""The strategy runner re-bases a strategy once per split (a real SQLite ledger, no broker):
the mark is saved with the snapshot, so a restart after it never scales the state twice,
and a state that already saw a bar of the ex-date (built on the new scale) is left alone."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from magellan_core.clock import VirtualClock
from magellan_daemon.ledger.store import Ledger
from magellan_daemon.runtime.strategy_runner import StrategyRunner
from magellan_daemon.sessions import SessionBook
from strategies.api.model import Bar
from strategies.api.session import Session
from strategies.bear_trap.strategy import BearTrap, BearTrapParams

DAY = date(2024, 4, 2)
SESSION = Session(
    date=DAY,
    open=datetime(2024, 4, 2, 13, 30, tzinfo=UTC),
    close=datetime(2024, 4, 2, 20, 0, tzinfo=UTC),
)
EX_DATE = date(2024, 4, 3)
PARAMS = BearTrapParams(universe=("AMC",))


def _bars(n: int) -> list[Bar]:
    return [
        Bar(
            symbol="AMC",
            timeframe="1Min",
            t=SESSION.open + timedelta(minutes=m),
            open=10.0 + m * 0.01,
            high=10.1 + m * 0.01,
            low=9.9 + m * 0.01,
            close=10.05 + m * 0.01,
            volume=1000.0,
        )
        for m in range(n)
    ]


def _runner(ledger: Ledger, clock: VirtualClock) -> StrategyRunner:
    return StrategyRunner(
        name="bear_trap",
        strategy=BearTrap(PARAMS, explain_skips=False),
        symbols=("AMC",),
        ledger=ledger,
        router=None,  # type: ignore[arg-type]  # nothing is ever routed here
        clock=clock,
        sessions=lambda: SessionBook([SESSION]),
        per_symbol_state=True,  # as the descriptor declares for Bear Trap
    )


def _prev_close(runner: StrategyRunner) -> float:
    return runner.strategy.snapshot()["symbols"]["AMC"]["atr"]["prev_close"]


async def test_a_split_rebases_once_across_a_restart(tmp_path: Path) -> None:
    clock = VirtualClock(SESSION.close, speed=0)
    ledger = Ledger.open(tmp_path / "ledger.sqlite")
    runner = _runner(ledger, clock)
    task = asyncio.create_task(runner.run())
    await runner.warmup(_bars(30))
    before = _prev_close(runner)
    assert await runner.rebase("AMC", EX_DATE, 4.0)
    assert _prev_close(runner) == before / 4
    assert not await runner.rebase("AMC", EX_DATE, 4.0)  # asked again: nothing
    task.cancel()

    restarted = _runner(ledger, clock)
    assert restarted.restore(lambda state: BearTrap(PARAMS, state, explain_skips=False))
    task = asyncio.create_task(restarted.run())
    assert not await restarted.rebase("AMC", EX_DATE, 4.0)  # a restart after it: nothing
    assert _prev_close(restarted) == before / 4
    task.cancel()
    ledger.close()


async def test_a_state_built_on_the_new_scale_is_not_rebased(tmp_path: Path) -> None:
    clock = VirtualClock(SESSION.close, speed=0)
    ledger = Ledger.open(tmp_path / "ledger.sqlite")
    runner = _runner(ledger, clock)
    task = asyncio.create_task(runner.run())
    await runner.warmup(_bars(30))
    before = _prev_close(runner)
    # The split's ex-date is the session these bars came from: they were on its scale.
    assert not await runner.rebase("AMC", DAY, 4.0)
    assert _prev_close(runner) == before
    task.cancel()
    ledger.close()
