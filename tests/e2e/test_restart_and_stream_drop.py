"""Crash safety on real bars: a SIGKILL between the 16:05 signal and the open, then a
dropped trade stream while orders fill.

1. Friday 2024-11-15: the daemon computes the 16:05 Daily Trend signal (intents persisted
   as pending) and is killed with SIGKILL at 16:08. It is restarted against the same,
   still-running simulator. At Monday's open + 60 s the pending intents are sent exactly
   once: not twice, not zero times.
2. Monday 09:59: the simulator drops every websocket, and virtual time jumps past 10:00,
   when the daily TSLA order fills (TSLA has hourly bars only: it fills as the 09:00 bar
   closes), while alpaca-py is still reconnecting. The reconciliation after the reconnect
   brings the missed fill into the ledger, exactly once.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from tests.e2e.harness import Daemon, Sim, config_dir, ny, wait_for

pytestmark = pytest.mark.timeout(300)


async def test_sigkill_restart_then_stream_drop(bars_dir: Path, tmp_path: Path) -> None:
    async with Sim(bars_dir, ny("2024-11-15", "15:50")) as sim:
        daemon = Daemon(config_dir(tmp_path), tmp_path / "state", sim.url, tmp_path / "d.log")
        daemon.start()
        await daemon.wait_ready()
        await sim.run_until(ny("2024-11-15", "16:08"))
        sim.pause()
        await wait_for(
            lambda: daemon.query("SELECT 1 FROM intents WHERE status='pending'"),
            30,
            "pending daily intents",
            daemon,
        )
        pending = daemon.query("SELECT * FROM intents WHERE status='pending'")
        await daemon.kill()
        assert daemon.proc is not None and daemon.proc.returncode == -9

        daemon.start()  # same state dir, same simulator (which kept its state)
        await daemon.wait_ready()
        sim.jump(ny("2024-11-18", "09:25"))
        await sim.run_until(ny("2024-11-18", "09:45"))
        await wait_for(
            lambda: not daemon.query("SELECT 1 FROM intents WHERE status='pending'"),
            30,
            "pending intents sent",
            daemon,
        )

        # -- 2. drop the streams, and let the TSLA fill happen while they are down -------
        await sim.run_until(ny("2024-11-18", "09:59"))
        sim.pause()
        dropped = await sim.server.drop_streams()
        assert dropped >= 1
        sim.jump(ny("2024-11-18", "10:02"))
        await sim.run_until(ny("2024-11-18", "10:02"))
        await daemon.wait_log("reconnected")
        await sim.run_until(ny("2024-11-18", "10:10"))
        await wait_for(
            lambda: len(daemon.query("SELECT 1 FROM fills")) >= len(sim.fills()),
            30,
            "ledger catching up with the broker's fills",
            daemon,
        )
        sim.pause()
        assert await daemon.stop() == 0

        broker_orders = sim.orders()
        broker_fills = sim.fills()

    # Each pending intent became exactly one order at the broker.
    cids = Counter(o["client_order_id"] for o in broker_orders)
    assert max(cids.values()) == 1
    daily = [o for o in broker_orders if o["client_order_id"].startswith("mg-dt-")]
    sent = daemon.query("SELECT * FROM intents WHERE strategy='daily_trend' AND status='sent'")
    assert len(daily) == len(sent) == len([p for p in pending if p["strategy"] == "daily_trend"])
    assert "restored from the ledger" in daemon.log_text()

    # The fill made while the stream was down is in the ledger once, from reconciliation.
    ledger_fills = daemon.query("SELECT * FROM fills")
    keys = Counter((f["broker_order_id"], Decimal(f["cum_qty"])) for f in ledger_fills)
    assert max(keys.values()) == 1
    assert sorted(keys) == sorted((f["order_id"], Decimal(f["cum_qty"])) for f in broker_fills)
    assert any(f["source"] == "reconcile" for f in ledger_fills), ledger_fills
    assert daemon.query("SELECT * FROM discrepancies") == []
