"""Start-to-READY: wall time from spawning ``magellan run`` (paper mode, all three
strategies of configs/magellan.toml, a fresh state directory) against a running simulator to
its READY line (first reconciliation done, strategies warmed up, streams subscribed,
scheduler running). Python's own start and imports are included. Goal: under 1 s.

The project's bytecode is compiled first, as ``pip install`` leaves it in /opt/magellan
(``make install-systemd``): the unit sets PYTHONDONTWRITEBYTECODE=1 on a read-only tree, so
a checkout run the same way would compile every module from source at each start (0.14-0.45 s
in two paired runs here) where the installed daemon does not.

The breakdown stamps each log line of the daemon as it arrives (milliseconds since spawn):
interpreter start, imports and config load end at the ``MODE:`` line (logged once
``node.modes`` and everything under it is imported); then the broker's clock and calendar,
the trade stream and first reconciliation, the strategies' sync and warm-up, and the rest
(bar stream, loops, status page, scheduler) up to READY. RSS is read from /proc at READY.

    .venv/bin/python bench/bench_ready.py [RUNS]
"""

from __future__ import annotations

import compileall
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from common import REPO, machine, median, report, rss_bytes

MAGELLAN = str(Path(sys.executable).with_name("magellan"))
GOAL_SECONDS = 1.0
PACKAGES = ("magellan_core", "magellan_daemon", "strategies")  # what `magellan run` imports
# The startup steps, each ended by the first log line holding all of its marker's words
# (the last strategy's warm-up line ends the warm-up; configs/magellan.toml's order).
STEPS = (
    ("start, imports, config", ("MODE:",)),
    ("ledger, broker clock, calendar", ("calendar:",)),
    ("trade stream, reconciliation", ("reconciled ",)),
    ("sync, warm-up", ("bear_trap:", "warm-up bars")),
    ("bar stream, loops, web, scheduler", ("READY:",)),
)


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


def one_start(url: str) -> tuple[float, dict[str, float], int]:
    """Seconds from spawn to READY, the seconds of each step of ``STEPS`` and the daemon's
    RSS at READY (the daemon is stopped with SIGTERM afterwards)."""
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
            steps: dict[str, float] = {}
            last, pending = 0.0, list(STEPS)
            for line in proc.stdout:
                now = time.perf_counter() - began
                if pending and all(word in line for word in pending[0][1]):
                    steps[pending.pop(0)[0]] = now - last
                    last = now
                if "READY:" in line:
                    return now, steps, rss_bytes(proc.pid)
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
    for package in PACKAGES:
        compileall.compile_dir(REPO / package, quiet=1)
    port = _free_port()
    sim = subprocess.Popen(
        [MAGELLAN, "sim", "--port", str(port), "--speed", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_http(f"{url}/sim/clock")
        starts = [one_start(url) for _ in range(runs)]
    finally:
        sim.send_signal(signal.SIGTERM)
        sim.wait(30)
    times = [t for t, _, _ in starts]
    report(
        "start to READY",
        median(times),
        "s",
        f"goal < {GOAL_SECONDS:g} s; median of {runs}; min {min(times):.2f} s, "
        f"max {max(times):.2f} s; 3 strategies, fresh ledger, simulator already up",
    )
    for name, _ in STEPS:
        values = [steps.get(name, float("nan")) for _, steps, _ in starts]
        report(f"  {name}", median(values) * 1000, "ms", f"median of {runs}")
    rss = [r / 2**20 for _, _, r in starts]
    report("daemon RSS at READY", median(rss), "MiB", f"median of {runs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
