"""Crash safety on real bars: a SIGKILL between the 16:05 signal and the open, then a
dropped trade stream while orders fill.

1. Friday 2024-11-15: the daemon computes the 16:05 Daily Trend signal (intents persisted
   as pending) and is killed with SIGKILL at 16:08. It is restarted against the same,
   still-running simulator. At Monday's open + 60 s the pending intents are sent exactly
   once: not twice, not zero times.
2. Monday 09:31:20, the pending orders just sent and not yet filled: the simulator drops
   every websocket, and virtual time jumps past 09:33, when they fill, while alpaca-py is
   still reconnecting. The reconciliation after the reconnect (or the open-order poll, if
   it comes first) brings the missed fills into the ledger, exactly once.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from tests.e2e.harness import Daemon, Sim, config_dir, ny, wait_for

pytestmark = pytest.mark.timeout(300)


async def test_sigkill_restart_then_stream_drop(bars_dir: Path, tmp_path: Path) -> None:
    async with Sim(bars_dir, ny("2024-11-15", "15:50")) as sim:
        config = config_dir(
            tmp_path, {"magellan.toml": ('feed = "iex"', 'feed = "iex"\nmetrics_port = 0')}
        )
        daemon = Daemon(config, tmp_path / "state", sim.url, tmp_path / "d.log")
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
        await sim.run_until(ny("2024-11-18", "09:31:20"))
        await wait_for(
            lambda: not daemon.query("SELECT 1 FROM intents WHERE status='pending'"),
            30,
            "pending intents sent",
            daemon,
        )

        # -- 2. drop the streams, and let the fills happen while they are down -----------
        await wait_for(
            lambda: (
                daemon.query("SELECT 1 FROM orders WHERE strategy='daily_trend'")
                and not daemon.query(
                    "SELECT 1 FROM orders WHERE status IN ('pending_submit', 'unknown')"
                )
            ),
            30,
            "the orders acknowledged",
            daemon,
        )
        assert daemon.query("SELECT 1 FROM fills") == []  # nothing filled yet
        # The fills' trade updates are lost on the socket, whenever the daemon reconnects:
        # under load its reconnect can beat the jump, and then only the lost frames keep
        # the ledger from learning the fill off the stream (what this test is about).
        sim.exchange.faults.trade_drop_rate = 1.0
        dropped = await sim.server.drop_streams()
        assert dropped >= 1
        sim.jump(ny("2024-11-18", "09:34"))
        await sim.run_until(ny("2024-11-18", "09:34"))
        await daemon.wait_log("trade-updates[main]: reconnected")
        sim.exchange.faults.trade_drop_rate = 0.0
        await sim.run_until(ny("2024-11-18", "10:10"))
        metrics_url = _metrics_url(daemon)
        await wait_for(lambda: _get(f"{metrics_url}/healthz")[0] == 200, 30, "healthy", daemon)
        scraped = _get(f"{metrics_url}/metrics")[1]
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
    assert any(f["source"] in ("reconcile", "poll") for f in ledger_fills), ledger_fills
    assert daemon.query("SELECT * FROM discrepancies") == []

    # Metrics scraped over HTTP during the run (127.0.0.1 only).
    assert metrics_url.startswith("http://127.0.0.1:")
    values = _samples(scraped)
    assert values['magellan_stream_connected{stream="trade-updates[main]"}'] == 1
    assert values['magellan_stream_reconnects{stream="trade-updates[main]"}'] >= 1
    assert values['magellan_fills_total{strategy="daily_trend"}'] >= 1
    assert values['magellan_orders_total{status="filled",strategy="daily_trend"}'] >= 1
    assert "magellan_event_loop_lag_seconds" in values
    assert "magellan_submit_latency_seconds_count" in values
    assert any(k.startswith("magellan_throttle_wait_seconds") for k in values)
    assert any(k.startswith("magellan_last_bar_age_seconds") for k in values)


def _metrics_url(daemon: Daemon) -> str:
    found = re.findall(r"metrics on (http://127\.0\.0\.1:\d+)/metrics", daemon.log_text())
    assert found, "no metrics line in the log"
    return found[-1]  # the restarted daemon's


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _samples(text: str) -> dict[str, float]:
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values
