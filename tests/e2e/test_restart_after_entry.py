"""A Bear Trap entry that fills while the daemon is down still gets its protective stop.

2024-11-29 (synthetic GME crash, see bars.py): the daemon is killed (SIGKILL) right after it
sent the 12:32 entry, before the fill. The entry fills while it is down. Before, the restarted
daemon reconciled the fill into the ledger before any strategy existed, so Bear Trap never
heard of it: the position stayed unprotected. Now the strategies are restored first, the
reconciliation's fill reaches Bear Trap like any other, and the restart sync checks the
strategy's view against the ledger: the stop rests for every share.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from tests.e2e.bars import early_close_crash_bars
from tests.e2e.harness import SPEED, Daemon, Sim, config_dir, ny, wait_for

pytestmark = pytest.mark.timeout(240)


async def test_an_entry_filled_while_down_is_protected_after_the_restart(
    bars_dir: Path, tmp_path: Path
) -> None:
    bars = early_close_crash_bars(bars_dir, tmp_path)
    async with Sim(bars, ny("2024-11-29", "12:20")) as sim:
        daemon = Daemon(config_dir(tmp_path), tmp_path / "state", sim.url, tmp_path / "d.log")
        daemon.start()
        await daemon.wait_ready()
        await sim.run_until(ny("2024-11-29", "12:33:10"), speed=SPEED / 2)
        # At the broker, not only in the ledger (written before the POST): a kill between
        # the two is another test's case, and under load it once landed there.
        await wait_for(
            lambda: any(o["symbol"] == "GME" and o["side"] == "buy" for o in sim.orders()),
            30,
            "the GME entry order at the broker",
            daemon,
        )
        await daemon.kill()
        await sim.run_until(ny("2024-11-29", "12:36"))  # the entry fills while it is down
        held = Decimal(sim.positions()["GME"])
        assert held > 0

        daemon.start()
        await daemon.wait_ready()
        await sim.run_until(ny("2024-11-29", "12:38"), speed=SPEED / 2)
        sim.pause()

        def resting() -> Decimal:
            return sum(
                (
                    Decimal(o["qty"]) - Decimal(o["filled_qty"])
                    for o in sim.orders()
                    if o["symbol"] == "GME" and o["type"] == "stop" and o["status"] == "new"
                ),
                Decimal(0),
            )

        await wait_for(lambda: resting() == held, 30, "a stop for every GME share", daemon)
        assert await daemon.stop() == 0
    ledger = daemon.query("SELECT qty FROM positions WHERE strategy='bear_trap' AND symbol='GME'")
    assert [Decimal(r["qty"]) for r in ledger] == [held]
