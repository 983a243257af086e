"""`make run-paper` on a machine with no keys: the embedded simulator, trading, Ctrl-C.

The test runs the exact command the Makefile target runs (checked with `make -n`), with no
Alpaca keys in the environment, a temporary state directory and a faster virtual clock.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.harness import REPO

pytestmark = pytest.mark.timeout(180)


def test_make_run_paper_runs_the_daemon_command() -> None:
    out = subprocess.run(
        ["make", "-n", "run-paper"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    assert "magellan run --config configs/magellan.toml" in out


def _fills(state: Path) -> int:
    path = state / "ledger.sqlite"
    if not path.exists():
        return 0
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT COUNT(*) FROM fills").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


def test_no_keys_embedded_simulator_trades_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    """Also the systemd protocol: with NOTIFY_SOCKET set (a socket this test binds, as
    systemd would), READY=1 comes after startup, STATUS= lines and watchdog pings while it
    runs, STOPPING=1 on Ctrl-C."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("APCA_")}
    notify_path = tmp_path / "notify.sock"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    notify.setblocking(False)
    env.update(NOTIFY_SOCKET=str(notify_path), WATCHDOG_USEC="500000")
    for inherited in ("WATCHDOG_PID", "INVOCATION_ID", "JOURNAL_STREAM"):
        env.pop(inherited, None)  # the test's own runner may be a systemd service
    state = tmp_path / "state"
    log_path = tmp_path / "run.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "magellan_daemon",
                "run",
                "--config",
                "configs/magellan.toml",
                "--state-dir",
                str(state),
                "--sim-speed",
                "600",
            ],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        messages: list[str] = []
        deadline = time.monotonic() + 120
        while _fills(state) == 0:
            assert proc.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            _drain(notify, messages)  # read as systemd does, so the queue never fills
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert proc.wait(60) == 0, log_path.read_text()[-3000:]
    text = log_path.read_text()
    assert "MODE: SIM - embedded Alpaca simulator" in text.splitlines()[0]
    assert "stopped cleanly" in text
    _drain(notify, messages)
    notify.close()
    kinds = [m.split("=", 1)[0] for m in messages]
    assert "READY" in kinds and "STOPPING" in kinds and "WATCHDOG" in kinds, messages
    assert kinds.index("READY") < kinds.index("STOPPING")
    assert any(m.startswith("STATUS=") and "open positions" in m for m in messages)


def _drain(sock: socket.socket, into: list[str]) -> None:
    while True:
        try:
            into.append(sock.recv(4096).decode())
        except BlockingIOError:
            return
