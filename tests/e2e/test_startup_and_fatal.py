"""Startup and the fatal paths, with the real daemon against the simulator.

- A bad minute at the broker (503 on a fifth of the requests) delays READY, never aborts it:
  every startup call retries retryable errors with backoff.
- A startup that truly cannot work (every request refused) exits non-zero within seconds,
  and a SIGTERM during such a startup ends it at once.
- Credentials the broker refuses (401), at startup or later: entries stop, one CRITICAL line
  says what to do, and the process exits with code 3 (systemd does not restart it).
- A fill path that cannot write (the day's CSV cannot be replaced) is fatal: exit 1 so that
  systemd restarts the daemon, instead of fills silently no longer being processed.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from magellan_daemon.node.daemon import EXIT_BROKER_FATAL, EXIT_FAILURE
from tests.e2e.harness import Daemon, Sim, config_dir, ny, only, wait_for

pytestmark = pytest.mark.timeout(240)
DAILY = only("daily_trend")


def _daemon(tmp_path: Path, sim: Sim) -> Daemon:
    return Daemon(config_dir(tmp_path, DAILY), tmp_path / "s", sim.url, tmp_path / "d.log")


async def test_503_on_a_fifth_of_the_requests_delays_ready_but_never_aborts_it(
    bars_dir: Path, tmp_path: Path
) -> None:
    async with Sim(bars_dir, ny("2024-11-26", "15:30")) as sim:
        sim.exchange.faults.update(http_error_rate=0.2, http_status=503, seed=7)
        daemon = _daemon(tmp_path, sim)
        daemon.start()
        await daemon.wait_ready()
        sim.exchange.faults.update(http_error_rate=0.0)
        assert await daemon.stop() == 0
    assert "startup failed" not in daemon.log_text()


async def test_a_startup_that_cannot_work_exits_non_zero_within_seconds(
    bars_dir: Path, tmp_path: Path
) -> None:
    async with Sim(bars_dir, ny("2024-11-26", "15:30")) as sim:
        sim.exchange.faults.update(http_error_rate=1.0, http_status=503)
        daemon = _daemon(tmp_path, sim)
        started = time.monotonic()
        daemon.start()
        assert await daemon.exited(60) == EXIT_FAILURE
        assert time.monotonic() - started < 45
    assert "startup failed, not going READY" in daemon.log_text()


async def test_sigterm_during_a_failing_startup_ends_it_at_once(
    bars_dir: Path, tmp_path: Path
) -> None:
    async with Sim(bars_dir, ny("2024-11-26", "15:30")) as sim:
        sim.exchange.faults.update(http_error_rate=1.0, http_status=503)
        daemon = _daemon(tmp_path, sim)
        daemon.start()
        await daemon.wait_log("Retrying")  # tenacity's line: the startup is retrying
        started = time.monotonic()
        code = await daemon.stop()
        assert time.monotonic() - started < 15
        assert code == 0
    assert "stop requested during startup" in daemon.log_text()


async def test_credentials_refused_at_startup_exit_with_code_3(
    bars_dir: Path, tmp_path: Path
) -> None:
    async with Sim(bars_dir, ny("2024-11-26", "15:30"), key="other", secret="keys") as sim:
        daemon = _daemon(tmp_path, sim)
        daemon.start()
        assert await daemon.exited(60) == EXIT_BROKER_FATAL
    log = daemon.log_text()
    assert "CRITICAL" in log and "BROKER REFUSED US" in log and "credentials file" in log


async def test_credentials_refused_while_running_stop_entries_and_exit_with_code_3(
    bars_dir: Path, tmp_path: Path
) -> None:
    async with Sim(bars_dir, ny("2024-11-26", "15:30")) as sim:
        daemon = _daemon(tmp_path, sim)
        daemon.start()
        await daemon.wait_ready()
        sim.exchange.faults.update(http_error_rate=1.0, http_status=401)
        assert await daemon.exited(60) == EXIT_BROKER_FATAL
    assert "BROKER REFUSED US" in daemon.log_text()


async def test_a_fill_that_cannot_be_written_to_the_csv_is_fatal(
    bars_dir: Path, tmp_path: Path
) -> None:
    async with Sim(bars_dir, ny("2024-11-26", "15:50")) as sim:
        daemon = _daemon(tmp_path, sim)
        daemon.start()
        await daemon.wait_ready()
        await sim.run_until(ny("2024-11-26", "16:10"))
        await wait_for(
            lambda: daemon.query("SELECT 1 FROM intents WHERE status='pending'"),
            30,
            "the 16:05 intents",
            daemon,
        )
        # The day's CSV can no longer be replaced: its temporary file's name is a directory.
        trades = tmp_path / "s" / "trades"
        (trades / "daily_trend_trades_20241127.csv.tmp").mkdir(parents=True)
        sim.jump(ny("2024-11-27", "09:25"))
        run = asyncio.ensure_future(sim.run_until(ny("2024-11-27", "09:45")))
        try:
            code = await daemon.exited(60)
        finally:
            run.cancel()
        assert code == EXIT_FAILURE
    log = daemon.log_text()
    assert "task trade-log ended" in log and "CRITICAL" in log
    assert daemon.query("SELECT 1 FROM fills"), "the fill itself is in the ledger"
