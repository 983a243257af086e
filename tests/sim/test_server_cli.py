"""``magellan sim`` as a user runs it: one ready line on stdout, serves, exits 0 on SIGTERM."""

from __future__ import annotations

import argparse
import json
import re
import signal
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from magellan_sim.cli import configure
from magellan_sim.factory import SimOptions, build_exchange

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


def test_strictness_flags_reach_the_exchange(bars_dir: Path) -> None:
    parser = argparse.ArgumentParser()
    configure(parser)
    defaults = parser.parse_args([])
    assert (defaults.cancel_latency, defaults.replace_latency) == (2.0, 2.0)
    assert defaults.wash_trade_check is True
    args = parser.parse_args(
        ["--cancel-latency", "0", "--replace-latency", "0.5", "--no-wash-trade-check"]
    )
    assert (args.cancel_latency, args.replace_latency, args.wash_trade_check) == (0, 0.5, False)

    options = SimOptions(
        bars_dir=bars_dir,
        start=datetime(2024, 12, 10, 15, 0, tzinfo=UTC),
        cancel_latency=args.cancel_latency,
        replace_latency=args.replace_latency,
        wash_trade_check=args.wash_trade_check,
    )
    exchange = build_exchange(options)
    assert exchange.orders.wash_trade_check is False
    order = exchange.orders.submit_order(
        "k",
        symbol="GME",
        qty=Decimal(1),
        notional=None,
        side="buy",
        type="limit",
        time_in_force="day",
        limit_price=Decimal(1),
        stop_price=None,
        client_order_id=None,
        extended_hours=False,
    )
    exchange.orders.cancel_order("k", order["id"])
    assert exchange.orders.get_order("k", order["id"])["status"] == "canceled"  # latency 0


def test_a_negative_latency_is_a_usage_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "magellan_daemon", "sim", "--cancel-latency", "-1"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "--cancel-latency" in result.stderr
