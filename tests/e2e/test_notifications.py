"""Notifications end to end: the daemon (a subprocess) trades Bear Trap against the
simulator with ``[notify]`` pointing (through an environment variable) at a loopback HTTP
receiver via apprise's ``json://``. The broker refuses the end-of-day sell and the stop
placed again after it: both refusals reach the receiver, each within about a second of the
daemon logging it, as do the entry's fill and the daily summary after the close. The URL
(it would carry a token) is in no log line.

The delay is measured between the daemon's log line (wall time, ms) and the receiver's
arrival time, printed, and bounded by the acceptance's second (measured: about 0.02 s on
the shared 2-core machine, so a loaded machine has fifty times that to spare).
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import pytest

from magellan_daemon.node.daemon import EXIT_BROKER_FATAL
from tests.e2e.bars import early_close_crash_bars
from tests.e2e.harness import SPEED, Daemon, Sim, config_dir, ny, only, wait_for
from tests.e2e.receiver import Receiver

pytestmark = pytest.mark.timeout(240)
NOTIFY = '[notify]\nurls_env = "MAGELLAN_TEST_NOTIFY_URLS"\n\n[accounts.main]'
WITHIN = 1.0  # wall seconds: the "within a second"; the figure is printed


def _logged_at(log: str, needle: str) -> float:
    """Wall time (epoch) of the first log line containing ``needle``."""
    for line in log.splitlines():
        if needle in line:
            return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S.%f").timestamp()
    raise AssertionError(f"{needle!r} not in the log")


async def test_refusals_fills_and_the_summary_reach_a_webhook(
    bars_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bars = early_close_crash_bars(bars_dir, tmp_path)
    config = config_dir(tmp_path, {"magellan.toml": ("[accounts.main]", NOTIFY)})
    async with Receiver() as receiver, Sim(bars, ny("2024-11-29", "12:20")) as sim:
        monkeypatch.setenv("MAGELLAN_TEST_NOTIFY_URLS", receiver.url)
        daemon = Daemon(config, tmp_path / "state", sim.url, tmp_path / "d.log")
        daemon.start()
        await daemon.wait_ready()
        await sim.run_until(ny("2024-11-29", "12:54:30"), speed=SPEED / 2)
        await wait_for(
            lambda: daemon.query(
                "SELECT 1 FROM positions WHERE strategy='bear_trap' AND CAST(qty AS REAL) > 0"
            ),
            30,
            "the GME position",
            daemon,
        )
        sim.exchange.faults.update(refuse_next_orders=2)  # the EOD sell, then its new stop
        await sim.run_until(ny("2024-11-29", "13:15"), speed=SPEED / 2)
        sim.pause()
        await wait_for(
            lambda: any("2024-11-29 closed" in m for m in receiver.messages()),
            30,
            "the daily summary",
            daemon,
        )
        assert await daemon.stop() == 0

    log = daemon.log_text()
    messages = receiver.messages()
    assert receiver.url.removeprefix("json://") not in log
    assert any("fill" in m and "GME" in m and " buy " in m for m in messages), messages
    refused = [
        (arrived, body["message"])
        for arrived, body in receiver.received
        if "order refused" in body.get("title", "") and "GME" in body.get("message", "")
    ]
    stops = [r for r in refused if "-ps-" in r[1]]
    exits = [r for r in refused if "-eod-" in r[1] or "eod" in r[1]]
    assert stops and exits, messages
    for arrived, text in (stops[0], exits[0]):
        cid = re.search(r"cid=([\w-]+)", text)
        assert cid, text
        delay = arrived - _logged_at(log, f"cid={cid.group(1)}")
        print(f"notification delay for {cid.group(1)}: {delay:.3f} s")
        assert -0.01 <= delay < WITHIN
    summary = next(m for m in messages if "2024-11-29 closed" in m)
    assert "bear_trap: realised" in summary and "total realised" in summary


async def test_a_fatal_exit_is_sent_before_the_process_ends(
    bars_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The broker refuses our credentials while running: the CRITICAL line reaches the
    receiver although the daemon exits right after it (the teardown sends what is queued)."""
    edits = [*only("daily_trend")["magellan.toml"], ("[accounts.main]", NOTIFY)]
    async with Receiver() as receiver, Sim(bars_dir, ny("2024-11-26", "15:30")) as sim:
        monkeypatch.setenv("MAGELLAN_TEST_NOTIFY_URLS", receiver.url)
        config = config_dir(tmp_path, {"magellan.toml": edits})
        daemon = Daemon(config, tmp_path / "state", sim.url, tmp_path / "d.log")
        daemon.start()
        await daemon.wait_ready()
        sim.exchange.faults.update(http_error_rate=1.0, http_status=401)
        assert await daemon.exited(60) == EXIT_BROKER_FATAL
        fatal = [m for m in receiver.messages() if m.startswith("Magellan: FATAL")]
    assert fatal and "BROKER REFUSED US" in fatal[0], receiver.messages()
