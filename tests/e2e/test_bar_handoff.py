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

from magellan_daemon.config import load_config
from magellan_daemon.signals_replay import SessionLookup
from strategies.bear_trap import BearTrap
from strategies.model import Bar
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
        await wait_for(
            lambda: daemon.query(
                "SELECT 1 FROM evaluations WHERE symbol='MULN' AND bar_time LIKE ?", (last + "%",)
            ),
            30,
            "the last bar evaluated",
            daemon,
        )
        assert await daemon.stop() == 0
        state = orjson.loads(
            daemon.query("SELECT state FROM strategy_state WHERE strategy='bear_trap'")[0]["state"]
        )["strategy"]["symbols"]

        params = load_config(config).strategies["bear_trap"].params
        reference = BearTrap(params)  # type: ignore[arg-type]
        bars = []
        for symbol in SYMBOLS:
            for b in sim.market.bars(symbol, "1Min", end - timedelta(days=4), end, end):
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
    for symbol in SYMBOLS:
        if symbol not in expected:
            continue
        mine, theirs = state[symbol], expected[symbol]
        for part in ("session", "atr", "volume"):
            assert mine[part] == theirs[part], (symbol, part)
    assert "backfilled over REST" in daemon.log_text()
