"""What the ``magellan sweep`` tests share: the command on the shared bars, its files read
back, and the kills (a sweep, or one of its workers, mid-way)."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import BARS_DIR

REPO = Path(__file__).resolve().parents[2]
CRASH = ["--strategy", "bear_trap", "--start", "2024-05-14", "--end", "2024-05-15"]
GRID = """[bear_trap]
min_drop_pct = [0.10, 0.15]
stop_atr_multiple = { low = 0.3, high = 0.6, step = 0.3 }
"""
OPTUNA = "[bear_trap]\nmin_drop_pct = { low = 0.08, high = 0.2 }\nstop_atr_multiple = [0.3, 0.6]\n"
CONFIG = """
[accounts.main]
key_env = "APCA_API_KEY_ID"
secret_env = "APCA_API_SECRET_KEY"
[strategies.bear_trap]
config = "best.toml"
account = "main"
"""


def sweep_args(space: Path, out: Path, *extra: str) -> list[str]:
    return [
        "sweep",
        "--bars",
        str(BARS_DIR),
        *CRASH,
        "--space",
        str(space),
        "--out",
        str(out),
        "--min-trades",
        "1",
        "--quiet",
        *extra,
    ]


def magellan(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "magellan_daemon", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def by_trial(path: Path) -> dict[str, dict[str, str]]:
    found = rows(path)
    numbers = [r["trial"] for r in found]
    assert len(numbers) == len(set(numbers)), f"a trial recorded twice: {numbers}"
    return {r["trial"]: {k: v for k, v in r.items() if k != "seconds"} for r in found}


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def processes() -> list[tuple[int, int, str]]:
    """(pid, parent pid, command line) of every process on this machine, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue  # ended meanwhile
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        found.append((int(entry.name), parent, command))
    return found


def run_killing_a_worker(args: list[str], is_worker: Callable[[int, int, str], bool]) -> str:
    """Run ``magellan`` and SIGKILL one of its trial workers once one runs; its stderr."""
    process = subprocess.Popen(
        [sys.executable, "-m", "magellan_daemon", *args],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    killed = False
    while not killed and time.monotonic() < deadline and process.poll() is None:
        for pid, parent, command in processes():
            if is_worker(process.pid, pid, command) and parent != process.pid:
                time.sleep(0.3)  # into its trial
                os.kill(pid, signal.SIGKILL)
                killed = True
                break
        time.sleep(0.05)
    _, err = process.communicate(timeout=300)
    assert killed, "no worker was seen running"
    assert process.returncode == 0, err
    return err


def kill_after_first_row(args: list[str], out: Path) -> None:
    """Start the sweep, SIGKILL it once a trial is recorded (mid-sweep)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "magellan_daemon", *args],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # the kill takes its workers too, as a killed terminal would
    )
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and process.poll() is None:
            file = out / "trials.csv"
            if file.exists() and len(file.read_text().splitlines()) >= 2:
                break
            time.sleep(0.05)
        assert process.poll() is None, "the sweep ended before it could be killed"
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
