"""Start-to-READY: wall time from spawning ``magellan run`` (paper mode, all three
strategies of configs/magellan.toml, a fresh state directory) against a running simulator to
its READY line (first reconciliation done, strategies warmed up, streams subscribed,
scheduler running). Python's own start and imports are included.

    .venv/bin/python bench/bench_ready.py [RUNS]
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from common import REPO, machine, median, report

MAGELLAN = str(Path(sys.executable).with_name("magellan"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(url)


def one_start(url: str) -> float:
    """Seconds from spawn to READY (the daemon is stopped with SIGTERM afterwards)."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("APCA_")}
        began = time.perf_counter()
        proc = subprocess.Popen(
            [
                *(MAGELLAN, "run", "--config", str(REPO / "configs" / "magellan.toml")),
                *("--broker-url", url, "--state-dir", f"{tmp}/s", "--log-dir", f"{tmp}/l"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                if "READY:" in line:
                    return time.perf_counter() - began
            raise RuntimeError(f"daemon exited with {proc.wait()} before READY")
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    print(f"# bench_ready on {machine()}", flush=True)
    port = _free_port()
    sim = subprocess.Popen(
        [MAGELLAN, "sim", "--port", str(port), "--speed", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_http(f"{url}/sim/clock")
        times = [one_start(url) for _ in range(runs)]
    finally:
        sim.send_signal(signal.SIGTERM)
        sim.wait(30)
    report(
        "start to READY",
        median(times),
        "s",
        f"median of {runs}; min {min(times):.2f} s, max {max(times):.2f} s; "
        "3 strategies, fresh ledger, simulator already up",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
