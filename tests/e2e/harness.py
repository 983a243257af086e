"""End-to-end harness: the real daemon (a ``magellan run`` subprocess) against the simulator
served from the test's own event loop, both on the simulator's virtual clock.

The daemon runs in paper mode with ``--broker-url`` pointing at the simulator, so it adopts
the simulator's clock and follows its jumps and speed changes. The test owns the clock: it
runs virtual time at ``SPEED`` through the parts of a session that matter and jumps over the
rest, and waits on virtual-time conditions (ledger rows, simulator state), never on a fixed
wall-clock sleep. Wall-clock timeouts exist only as safety nets.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from magellan_core.clock import VirtualClock
from magellan_sim.exchange.exchange import Exchange
from magellan_sim.market.calendar import SessionCalendar
from magellan_sim.market.market import MarketData
from magellan_sim.server.server import SimServer

REPO = Path(__file__).resolve().parents[2]
SPEED = 1000.0  # virtual seconds per wall second while a session runs
KEY = "PKTESTKEYMAGELLAN0001"  # recognisable fake credentials (the secrets test greps them)
SECRET = "sk-test-SECRET-do-not-log-9f8e7d"
SAFETY_TIMEOUT = 120.0  # wall seconds; nothing waits this long when the code works
APPROACH = timedelta(minutes=2)  # before a checkpoint, slow down to a tenth of the speed ...
LANDING = timedelta(seconds=5)  # ... and at this distance freeze and step onto it


class Sim:
    """The simulator, served on this test's loop, with its clock."""

    def __init__(
        self,
        bars_dir: Path,
        start: datetime,
        *,
        key: str | None = None,
        secret: str | None = None,
        rate_limit: int = 200,
        **exchange_options: Any,
    ) -> None:
        calendar = SessionCalendar()
        self.clock = VirtualClock(start, speed=0)
        self.market = MarketData.from_dir(bars_dir, calendar)
        self.exchange = Exchange(self.clock, self.market, calendar, **exchange_options)
        self.server = SimServer(
            self.exchange, port=0, key=key, secret=secret, rate_limit=rate_limit
        )

    async def __aenter__(self) -> Sim:
        await self.server.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.server.stop()

    @property
    def url(self) -> str:
        """The simulator's base URL."""
        return self.server.url

    async def run_until(self, t: datetime, speed: float = SPEED) -> None:
        """Let virtual time run at ``speed`` until ``t``, then stop there exactly.

        A running clock overshoots a wall-clock wake-up by the machine's scheduling latency
        (a few ms = seconds to a minute of virtual time at 1000x). So the clock runs at
        ``speed`` until two minutes before ``t``, at a tenth of it until five seconds before,
        then freezes and steps to ``t``: checkpoints are exact virtual instants on a loaded
        machine, and nothing but the last five seconds is ever skipped.
        """
        for until, pace in ((t - APPROACH, speed), (t - LANDING, speed / 10)):
            if self.clock.now() < until:
                self.clock.set_speed(pace)
                await asyncio.wait_for(self.clock.sleep_until(until), SAFETY_TIMEOUT)
        self.clock.set_speed(0)
        if self.clock.now() < t:
            self.clock.set(t)
        await asyncio.wait_for(self.server.wait_processed(t), SAFETY_TIMEOUT)

    def jump(self, t: datetime) -> None:
        """Skip to ``t`` at once (over a closed market)."""
        self.clock.set(t)

    def pause(self) -> None:
        """Freeze virtual time."""
        self.clock.set_speed(0)

    def fills(self) -> list[dict[str, Any]]:
        """Every FILL activity of the daemon's account, oldest first."""
        rows: list[dict[str, Any]] = []
        token = None
        while True:
            page = self.exchange.accounts.activities(
                KEY, activity_types=["FILL"], direction="asc", page_size=100, page_token=token
            )
            rows += page
            if len(page) < 100:
                return rows
            token = page[-1]["id"]

    def positions(self) -> dict[str, float]:
        """The account's positions at the simulator: symbol -> qty."""
        return {p["symbol"]: float(p["qty"]) for p in self.exchange.accounts.list_positions(KEY)}

    def orders(self) -> list[dict[str, Any]]:
        """Every order of the daemon's account."""
        return self.exchange.orders.list_orders(KEY, status="all", limit=500, direction="asc")


READY_LINE = re.compile(r" INFO +\S+ +READY: ")
STARTED: list[subprocess.Popen[bytes]] = []  # every daemon process, killed after each test


class Daemon:
    """One ``magellan run`` subprocess with its own log file."""

    def __init__(self, config: Path, state_dir: Path, broker_url: str, log_path: Path) -> None:
        self.config = config
        self.state_dir = state_dir
        self.broker_url = broker_url
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._offset = 0

    def start(self) -> None:
        """Start the daemon process (paper mode against the simulator, fake keys)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("APCA_")}
        env.update(APCA_API_KEY_ID=KEY, APCA_API_SECRET_KEY=SECRET, PYTHONUNBUFFERED="1")
        for inherited in ("JOURNAL_STREAM", "INVOCATION_ID", "NOTIFY_SOCKET", "WATCHDOG_USEC"):
            env.pop(inherited, None)  # the test runner may itself be a systemd service
        self._offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        handle = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "magellan_daemon",
                "run",
                "--config",
                str(self.config),
                "--state-dir",
                str(self.state_dir),
                "--broker-url",
                self.broker_url,
            ],
            cwd=REPO,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
        STARTED.append(self.proc)

    def log_text(self) -> str:
        """Everything this daemon (all its runs) wrote."""
        return self.log_path.read_text(errors="replace")

    def current_log(self) -> str:
        """What the current run (since the last start) wrote."""
        return self.log_path.read_text(errors="replace")[self._offset :]

    async def wait_log(self, needle: str, timeout: float = SAFETY_TIMEOUT) -> None:
        """Wait until the current run's log contains ``needle``."""
        await wait_for(
            lambda: needle in self.current_log(),
            timeout,
            f"log line {needle!r}",
            self,
        )

    async def wait_ready(self) -> None:
        """Wait for the READY line (first reconciliation done, scheduler running). Its INFO
        line, not any "READY:": a failed startup logs "startup failed, not going READY: ..."
        at ERROR, and that must not pass for ready."""
        await wait_for(
            lambda: READY_LINE.search(self.current_log()) is not None,
            SAFETY_TIMEOUT,
            "the READY line",
            self,
        )

    async def stop(self) -> int:
        """SIGTERM and wait for a clean exit; returns the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(asyncio.to_thread(self.proc.wait), 60)

    async def exited(self, timeout: float = SAFETY_TIMEOUT) -> int:
        """Wait for the process to end by itself; its exit code."""
        assert self.proc is not None
        return await asyncio.wait_for(asyncio.to_thread(self.proc.wait), timeout)

    async def kill(self) -> None:
        """SIGKILL: no cleanup at all."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(asyncio.to_thread(self.proc.wait), 30)

    def ledger(self) -> sqlite3.Connection:
        """A read-only connection to the daemon's ledger."""
        conn = sqlite3.connect(f"file:{self.state_dir / 'ledger.sqlite'}?mode=ro", uri=True)
        conn.row_factory = sqlite3.Row
        return conn

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """Rows of a ledger query (empty when the ledger does not exist yet)."""
        if not (self.state_dir / "ledger.sqlite").exists():
            return []
        conn = self.ledger()
        try:
            return [dict(r) for r in conn.execute(sql, args)]
        except sqlite3.OperationalError:
            return []
        finally:
            conn.close()


async def wait_for(
    condition: Callable[[], bool], timeout: float, what: str, daemon: Daemon | None = None
) -> None:
    """Poll ``condition`` (cheap, local reads) until true; fail with the daemon's log tail."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if daemon is not None and daemon.proc is not None and daemon.proc.poll() is not None:
            raise AssertionError(
                f"daemon exited ({daemon.proc.returncode}) while waiting for {what}:\n"
                + daemon.log_text()[-4000:]
            )
        if loop.time() > deadline:
            tail = daemon.log_text()[-4000:] if daemon else ""
            raise AssertionError(f"timed out waiting for {what}\n{tail}")
        await asyncio.sleep(0.02)


def ny(day: str, hhmm: str) -> datetime:
    """New York wall time on ``day`` as an aware datetime."""
    from zoneinfo import ZoneInfo

    return datetime.fromisoformat(f"{day}T{hhmm}").replace(tzinfo=ZoneInfo("America/New_York"))


MINUTE = timedelta(minutes=1)


Edit = tuple[str, str]


def config_dir(tmp: Path, replace: dict[str, Edit | list[Edit]] | None = None) -> Path:
    """A copy of the repo's configs in ``tmp`` (so state paths and edits stay in the test);
    ``replace`` maps a file name to (old, new) text to change in it (or a list of them)."""
    folder = tmp / "configs"
    folder.mkdir(parents=True, exist_ok=True)
    for source in (REPO / "configs").glob("*.toml"):
        text = source.read_text()
        edits = (replace or {}).get(source.name, [])
        for old, new in [edits] if isinstance(edits, tuple) else edits:
            assert old in text, f"{old!r} not in {source.name}"
            text = text.replace(old, new, 1)
        # Any free port for the status page: tests run two at a time.
        text = text.replace("[web]\nport = 8780\n", "[web]\nport = 0\n")
        (folder / source.name).write_text(text)
    return folder / "magellan.toml"


def only(*strategies: str) -> dict[str, list[Edit]]:
    """Config edits that leave only ``strategies`` enabled."""
    edits = []
    for name in ("daily_trend", "hourly_swing", "bear_trap"):
        if name not in strategies:
            edits.append(
                (
                    f'config = "{name}.toml"\naccount = "main"\nenabled = true',
                    f'config = "{name}.toml"\naccount = "main"\nenabled = false',
                )
            )
    return {"magellan.toml": edits}


def assert_stop_rested_until_exit(broker_orders: list[dict], symbol: str) -> None:
    """Read from the broker's own orders: no moment between the first protective stop and
    the exit without a resting stop for the position."""
    ours = [o for o in broker_orders if o["client_order_id"].startswith(f"mg-bt-{symbol}-")]
    stops = sorted(
        (o for o in ours if "-ps-" in o["client_order_id"]), key=lambda o: o["submitted_at"]
    )
    sells = [o for o in ours if o["side"] == "sell" and "-ps-" not in o["client_order_id"]]
    assert stops, f"no protective stop at the broker for {symbol}"

    def end(order: dict) -> datetime | None:
        ended = [order.get(k) for k in ("filled_at", "canceled_at", "replaced_at", "expired_at")]
        found = [_parse(e) for e in ended if e]
        return min(found) if found else None

    for before, after in itertools.pairwise(stops):
        ended = end(before)
        assert ended is not None and _parse(after["submitted_at"]) <= ended + timedelta(
            seconds=1
        ), (
            before["client_order_id"],
            after["client_order_id"],
        )
    last = stops[-1]
    if last["status"] == "filled":  # the stop was the exit
        return
    last_end = end(last)
    assert last_end is not None, "a stop still rests after the exit"
    final_sell = max(_parse(o["submitted_at"]) for o in sells)
    # Cancel-then-sell is the only gap (Alpaca holds shares for the resting stop); it lasts
    # a REST round trip or two: well under a bar, even at 500x virtual speed.
    assert timedelta(0) <= final_sell - last_end <= MINUTE, (last_end, final_sell)


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
