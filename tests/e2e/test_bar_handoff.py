"""No minute bar is lost between the warm-up and the stream, on the first connection too.

2024-11-15, MULN's crash day: the daemon starts at 13:30 while virtual time runs fast (the
gap between its REST warm-up and its subscription then spans several minutes of bars). It
used to feed the bars missed across a reconnect, but on the first connection it returned
early: those bars never reached Bear Trap, and a lost bar can hold the session low, the ATR
and the volume mean at wrong values. Now every connection buffers the stream, backfills over
REST up to now, deduplicates and feeds in order. Checked against an independent reference:
Bear Trap fed every REST bar once, in order, ends in exactly the daemon's state.
"""

from __future__ import annotations

from datetime import UTC, timedelta
from pathlib import Path

import orjson
import pytest

from magellan_daemon.backtest.signals_replay import SessionLookup
from magellan_daemon.config.loading import load_config
from magellan_daemon.runtime.strategy_runner import QUIET_SAVE_EVERY
from magellan_daemon.timefmt import parse_iso
from strategies.api.model import Bar
from strategies.bear_trap.strategy import BearTrap
from tests.e2e.harness import Daemon, Sim, config_dir, ny, only, wait_for

pytestmark = pytest.mark.timeout(240)
SYMBOLS = ("MULN", "GME", "AMC", "PLUG", "RIOT", "MARA", "TLRY", "WKHS")


async def test_every_bar_reaches_bear_trap_once_in_order(bars_dir: Path, tmp_path: Path) -> None:
    config = config_dir(tmp_path, only("bear_trap"))
    async with Sim(bars_dir, ny("2024-11-15", "13:30")) as sim:
        daemon = Daemon(config, tmp_path / "s", sim.url, tmp_path / "d.log")
        sim.clock.set_speed(1000)  # minutes of bars complete while the daemon starts
        daemon.start()
        await daemon.wait_ready()
        end = sim.clock.now().replace(second=0, microsecond=0) + timedelta(minutes=6)
        await sim.run_until(end, speed=200)
        last = (end - timedelta(minutes=1)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M")
        # Quiet bars are saved together every QUIET_SAVE_EVERY: run on until one such save
        # holds the last checked bar.
        await sim.run_until(end + QUIET_SAVE_EVERY + timedelta(minutes=1), speed=200)
        await wait_for(
            lambda: daemon.query(
                "SELECT 1 FROM strategy_symbol_state WHERE symbol='MULN' AND last_bar >= ?",
                (last,),
            ),
            30,
            "the last bar saved",
            daemon,
        )
        assert await daemon.stop() == 0
        rows = daemon.query("SELECT symbol, state, last_bar FROM strategy_symbol_state")
        state = {r["symbol"]: orjson.loads(r["state"]) for r in rows}
        seen = {r["symbol"]: parse_iso(r["last_bar"]) for r in rows}

        params = load_config(config).strategies["bear_trap"].params
        reference = BearTrap(params)  # type: ignore[arg-type]
        bars = []
        stop = max(seen.values()) + timedelta(minutes=1)
        for symbol in SYMBOLS:
            for b in sim.market.bars(symbol, "1Min", end - timedelta(days=4), stop, stop):
                if symbol not in seen or b.t > seen[symbol]:
                    continue  # the reference stops where the daemon's saved state does
                bars.append(
                    Bar(
                        symbol=symbol,
                        timeframe="1Min",
                        t=b.t,
                        open=b.open,
                        high=b.high,
                        low=b.low,
                        close=b.close,
                        volume=float(b.volume),
                    )
                )
        bars.sort(key=lambda b: (b.t, b.symbol))
        reference.warmup(bars, SessionLookup(sim.market.calendar))
    expected = reference.snapshot()["symbols"]
    assert seen["MULN"] >= end - timedelta(minutes=1)
    for symbol in SYMBOLS:
        if symbol not in expected:
            continue
        mine, theirs = state[symbol], expected[symbol]
        for part in ("session", "atr", "volume"):
            assert mine[part] == theirs[part], (symbol, part)
    assert "backfilled over REST" in daemon.log_text()
