"""The strategy runner's incremental saves (a real SQLite ledger, no broker): a per-symbol
strategy writes its quiet symbols every QUIET_SAVE_EVERY, and a restart from that state,
fed the bars after each symbol's saved last bar (as the bar feed's backfill does), ends in
exactly the state of a runner that never stopped. No record of a skipped bar is kept."""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from magellan_core.clock import VirtualClock
from magellan_daemon.adapters.bar_batch import BarBatch
from magellan_daemon.ledger.store import Ledger
from magellan_daemon.runtime.strategy_runner import QUIET_SAVE_EVERY, StrategyRunner
from magellan_daemon.sessions import SessionBook
from strategies.api.model import Bar
from strategies.api.session import Session
from strategies.bear_trap.strategy import BearTrap, BearTrapParams

SESSION = Session(
    date=date(2024, 4, 2),
    open=datetime(2024, 4, 2, 13, 30, tzinfo=UTC),
    close=datetime(2024, 4, 2, 20, 0, tzinfo=UTC),
)
SYMBOLS = ("AMC", "GME", "MULN")
PARAMS = BearTrapParams(universe=SYMBOLS)


def _minutes(count: int) -> list[list[Bar]]:
    """``count`` minutes of gently moving bars (no crash: the runner sees no intent)."""
    rng = random.Random(7)
    price = dict.fromkeys(SYMBOLS, 10.0)
    minutes = []
    for m in range(count):
        t = SESSION.open + timedelta(minutes=m)
        batch = []
        for s in SYMBOLS:
            o = price[s]
            c = price[s] = o * (1 + rng.gauss(0, 0.002))
            batch.append(
                Bar(
                    symbol=s,
                    timeframe="1Min",
                    t=t,
                    open=o,
                    high=max(o, c) + 0.01,
                    low=min(o, c) - 0.01,
                    close=c,
                    volume=1000.0 + m,
                )
            )
        minutes.append(batch)
    return minutes


def _runner(ledger: Ledger, clock: VirtualClock) -> StrategyRunner:
    return StrategyRunner(
        name="bear_trap",
        strategy=BearTrap(PARAMS, explain_skips=False),
        symbols=SYMBOLS,
        ledger=ledger,
        router=None,  # type: ignore[arg-type]  # quiet bars: nothing is ever routed
        clock=clock,
        sessions=lambda: SessionBook([SESSION]),
        per_symbol_state=True,  # as the descriptor declares for Bear Trap
    )


async def _feed(runner: StrategyRunner, clock: VirtualClock, minutes: list[list[Bar]]) -> None:
    for batch in minutes:
        clock.set(batch[0].t + timedelta(minutes=1, seconds=2))
        await runner.feed(batch)
    await asyncio.sleep(0.01)  # a save the runner posted to itself


async def test_a_restart_from_the_incremental_state_is_exact(tmp_path: Path) -> None:
    minutes = _minutes(43)
    clock = VirtualClock(SESSION.open, speed=0)
    ledger = Ledger.open(tmp_path / "ledger.sqlite")
    steady = _runner(ledger, clock)
    task = asyncio.create_task(steady.run())
    await _feed(steady, clock, minutes)
    task.cancel()

    # As after a kill -9: the quiet symbols' rows are at most QUIET_SAVE_EVERY old.
    again = _runner(ledger, clock)
    assert again.restore(lambda state: BearTrap(PARAMS, state=state, explain_skips=False))
    newest = minutes[-1][0].t
    for symbol in SYMBOLS:
        assert newest - QUIET_SAVE_EVERY <= again.last_bar[symbol] < newest
    task = asyncio.create_task(again.run())
    replayed = await again.warmup([b for batch in minutes for b in batch])
    task.cancel()
    assert replayed > 0
    assert again.last_bar == steady.last_bar
    assert again.strategy.snapshot() == steady.strategy.snapshot()
    assert ledger.evaluations("bear_trap") == []  # skipped bars leave no record
    ledger.close()


async def test_a_clean_stop_saves_every_symbol(tmp_path: Path) -> None:
    minutes = _minutes(12)
    clock = VirtualClock(SESSION.open, speed=0)
    ledger = Ledger.open(tmp_path / "ledger.sqlite")
    steady = _runner(ledger, clock)
    task = asyncio.create_task(steady.run())
    await _feed(steady, clock, minutes)
    task.cancel()
    steady.save()  # what the daemon's teardown does
    again = _runner(ledger, clock)
    assert again.restore(lambda state: BearTrap(PARAMS, state=state, explain_skips=False))
    assert again.last_bar == steady.last_bar
    assert again.strategy.snapshot() == steady.strategy.snapshot()
    ledger.close()


async def test_a_runner_behind_the_market_takes_the_backlog_as_warm_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A streamed batch whose bars are minutes old and that waited in the runner's queue
    (the runner fell behind) updates the strategy's state but decides nothing; the first
    current batch after it is evaluated as usual."""
    minutes = _minutes(6)
    clock = VirtualClock(SESSION.open, speed=0)
    ledger = Ledger.open(tmp_path / "ledger.sqlite")
    runner = StrategyRunner(
        name="bear_trap",
        strategy=BearTrap(PARAMS, explain_skips=True),  # a record for every bar it decides on
        symbols=SYMBOLS,
        ledger=ledger,
        router=None,  # type: ignore[arg-type]  # quiet bars: nothing is ever routed
        clock=clock,
        sessions=lambda: SessionBook([SESSION]),
        per_symbol_state=True,
        behind_wall_seconds=0.0,  # any wait counts: the market lag decides here
    )
    worker = asyncio.create_task(runner.run())
    try:
        with caplog.at_level(logging.INFO):
            clock.set(minutes[0][0].t + timedelta(minutes=5))  # five minutes behind
            runner.post_batch(_batch(minutes[0]))
            await runner.feed([])  # the queue is in order: the batch was handled
            assert ledger.evaluations("bear_trap") == []
            assert runner.last_bar == {s: minutes[0][0].t for s in SYMBOLS}
            assert runner.bars_behind == len(SYMBOLS)
            clock.set(minutes[5][0].t + timedelta(minutes=1, seconds=2))  # current again
            runner.post_batch(_batch(minutes[5]))
            await runner.feed([])
        assert {e["symbol"] for e in ledger.evaluations("bear_trap")} == set(SYMBOLS)
        messages = [(r.levelno, r.getMessage()) for r in caplog.records]
        assert any(lvl == logging.WARNING and "behind the market" in m for lvl, m in messages)
        assert any(lvl == logging.INFO and "caught up: 3 bars" in m for lvl, m in messages)
    finally:
        worker.cancel()
        ledger.close()


def _batch(bars: list[Bar]) -> BarBatch:
    batch = BarBatch()
    for b in bars:
        batch.append(b.symbol, b.t, b.open, b.high, b.low, b.close, b.volume)
    return batch
