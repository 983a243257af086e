"""``magellan sim`` as a user runs it: one ready line on stdout, serves, exits 0 on SIGTERM."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

READY = re.compile(r"^magellan-sim listening on (http://127\.0\.0\.1:(\d+))\n$")


def test_magellan_sim_prints_one_line_and_exits_0_on_sigterm(bars_dir: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "magellan_daemon",
        "sim",
        "--port",
        "0",
        "--bars",
        str(bars_dir),
        "--start",
        "2024-12-10T14:25:00Z",
        "--speed",
        "0",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = READY.match(line)
        assert match, (line, process.stderr.read() if process.poll() is not None else "")
        with urllib.request.urlopen(f"{match.group(1)}/sim/clock", timeout=10) as response:
            state = json.load(response)
        assert state["now"] == "2024-12-10T14:25:00+00:00"
        assert state["speed"] == 0
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert process.stdout.read() == ""  # exactly one line on stdout
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_key_without_secret_is_a_usage_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "magellan_daemon", "sim", "--port", "0", "--key", "k"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert "--key and --secret" in result.stderr
