"""Running one chaos scenario: the real daemon (a subprocess, tests/e2e/harness.py) against
the strict simulator on virtual time over real bars, with the plan's faults injected through
``POST /sim/faults``, SIGKILLs at the plan's kill points each followed by a restart, and
operator halts through the ``magellan halt``/``resume`` CLI. The invariants are checked while
it runs (Bear Trap's stop), at each virtual close, and after a clean stop at the end.

An aimed kill arms a simulator hook (``POST /sim/hooks``) for the request or trade update it
aims at; the hook's callback SIGKILLs the daemon at the instant the simulator receives that
request (held there, in flight, until the daemon is dead) or has written that fill frame.
It *landed* when the request was in flight at the kill, or the fill was not yet in the
ledger when the daemon died; a hook never hit before the deadline is a kill at a random
point instead, counted as aimed and not landed.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from magellan_daemon.timefmt import NEW_YORK
from magellan_sim.exchange.hooks import Hook
from tests.chaos import invariants
from tests.chaos.invariants import BrokerView
from tests.chaos.plan import BUSY_RATE_LIMIT, Plan, Step
from tests.chaos.tradebars import busy_bars, shaped_trade_bars
from tests.e2e.harness import (
    REPO,
    SAFETY_TIMEOUT,
    SPEED,
    Daemon,
    Edit,
    Sim,
    config_dir,
    ny,
    only,
)

CLEAR = {
    "http_error_rate": 0.0,
    "http_error_after_rate": 0.0,
    "http_status": 503,
    "latency_ms": 0,
    "reject_next_orders": 0,
    "refuse_next_orders": 0,
    "refuse_next_cancels": 0,
    "refuse_next_replaces": 0,
    "partial_fill_ratio": 0.0,
    "trade_duplicate_rate": 0.0,
    "trade_reorder_rate": 0.0,
    "trade_drop_rate": 0.0,
    "drop_next_fill_events": 0,
    "silent_trade_seconds": 0.0,
    "silent_data_seconds": 0.0,
}
SETTLE_SPEED = 20.0  # virtual seconds per wall second while the ledger catches up at a close
SETTLE_WALL = 45.0  # wall seconds the ledger gets to converge on the broker after the faults
HALT_SLACK = timedelta(seconds=5)  # an entry past its gates just before the halt may still go
STOP_ALLOWANCE = timedelta(minutes=4)  # see Scenario._stop_allowance
POLL = 0.01  # wall seconds between the watcher's looks at the ledger's fills
FAST_SPEED = 4000.0  # virtual seconds per wall second through a plan's quiet stretch
# Into each close, time runs at CLOSE_SPEED: there the daemon's answer to a refusal must come
# within minutes, and at SPEED one loaded HTTP round trip (tens of wall milliseconds) is most
# of a virtual minute, a thousand times Alpaca's; at CLOSE_SPEED it is still a hundred times.
CLOSE_SPEED = 100.0
CLOSE_SLOW_FROM, CLOSE_SLOW_UNTIL = "15:50", "16:01"  # New York times
KILL_HOLD = 20.0  # wall seconds a hooked request may be held (the kill comes at its hit)
# The hook each aimed kill point arms (its "when" comes from the plan for requests).
KILL_HOOKS: dict[str, dict[str, object]] = {
    "submission": {"method": "POST", "path": "^/v2/orders$"},
    "stop replace": {"method": "PATCH", "client_order_id": "-ps-"},
    "reconciliation": {"method": "GET", "path": "^/v2/account/activities"},
    "fill": {"kind": "trade_update", "event": "fill|partial_fill"},
}


@dataclass
class Outcome:
    """What one scenario did and found."""

    seed: int
    window: str
    orders: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    kills: Counter[str] = field(default_factory=Counter)
    aimed: Counter[str] = field(default_factory=Counter)  # aimed kills, by point
    landed: Counter[str] = field(default_factory=Counter)  # of those, landed where aimed
    refusals: int = 0  # refusal sequences armed
    refusals_reached: int = 0  # of those, whose point the trade reached (the hook was hit)
    unprotected_reported: int = 0  # the position guard's UNPROTECTED errors
    violations: list[str] = field(default_factory=list)
    wall_seconds: float = 0.0


class Scenario:
    """One plan, run against one simulator and one state directory."""

    def __init__(self, plan: Plan, bars_dir: Path, workdir: Path, speed: float = SPEED) -> None:
        self.plan = plan
        self.bars_dir = bars_dir
        self.workdir = workdir
        self.speed = speed
        self.outcome = Outcome(plan.seed, plan.window.name)
        self._halts: list[tuple[str, datetime, datetime]] = []
        self._halted: dict[str, datetime] = {}
        self._up_since: datetime | None = None
        self._up: list[tuple[datetime, datetime]] = []  # READY to kill/stop, virtual time
        self._known: dict[tuple[str, Decimal], datetime] = {}  # fill -> when the ledger had it
        self._killed = asyncio.Event()
        self._pending_downtime = timedelta(0)
        self._kill_hook: Hook | None = None  # the aimed kill's hook, until it is settled
        self._kill_point = ""
        self._refusal_hook: Hook | None = None

    async def run(self) -> Outcome:
        """Run the whole plan; the outcome lists every invariant violation seen."""
        loop = asyncio.get_running_loop()
        began = loop.time()
        first = self.plan.window.sessions[0].begin
        self.config = config_dir(self.workdir, CONFIGS[self.plan.config]())
        bars = self.bars_dir
        if self.plan.bars_shape == "busy":
            days = tuple(s.day for s in self.plan.window.sessions)
            bars = busy_bars(self.bars_dir, self.workdir, days)
        elif self.plan.bars_shape:
            bars = shaped_trade_bars(self.bars_dir, self.workdir, self.plan.bars_shape)
        options = self.plan.exchange_options
        async with Sim(bars, first, rate_limit=self.plan.rate_limit, **options) as sim:
            self.sim = sim
            self.daemon = Daemon(
                self.config, self.workdir / "state", sim.url, self.workdir / "daemon.log"
            )
            await self._start()
            watcher = asyncio.create_task(self._watch())
            try:
                await self._run_sessions()
                await self._finish()
            finally:
                watcher.cancel()
        self.outcome.wall_seconds = loop.time() - began
        return self.outcome

    # -- the timeline ------------------------------------------------------------------

    async def _run_sessions(self) -> None:
        sessions = self.plan.window.sessions
        for index, session in enumerate(sessions):
            if self.sim.clock.now() < session.begin:
                self.sim.jump(session.begin)
            for step in (s for s in self.plan.steps if session.begin <= s.at < session.finish):
                await self._advance(step.at)
                await self._do(step)
            close = ny(session.day, "16:01")
            if index < len(sessions) - 1 or session.finish >= close:
                await self._advance(min(close, session.finish))
                await self._checkpoint(closed=session.finish >= close)
            await self._advance(session.finish)

    async def _advance(self, t: datetime) -> None:
        """Run virtual time to ``t`` (through the plan's quiet stretch at ``FAST_SPEED``, into
        each close at ``CLOSE_SPEED``)."""
        for edge in sorted(self._speed_edges()):
            if self.sim.clock.now() < edge < t:
                await self._advance_at(edge)
        await self._advance_at(t)

    def _speed_edges(self) -> list[datetime]:
        edges = list(self.plan.fast or ())
        for day in {s.day for s in self.plan.window.sessions}:
            edges += [ny(day, CLOSE_SLOW_FROM), ny(day, CLOSE_SLOW_UNTIL)]
        return edges

    def _speed_now(self) -> float:
        now = self.sim.clock.now()
        fast = self.plan.fast
        if fast is not None and fast[0] <= now < fast[1]:
            return FAST_SPEED
        if CLOSE_SLOW_FROM <= now.astimezone(NEW_YORK).strftime("%H:%M") < CLOSE_SLOW_UNTIL:
            return CLOSE_SPEED
        return self.speed

    async def _advance_at(self, t: datetime) -> None:
        """Run virtual time to ``t`` at one speed; a kill on the way is followed by the
        plan's downtime and a restart, then time runs on to ``t``."""
        while self.sim.clock.now() < t:
            self.sim.clock.set_speed(self._speed_now())
            sleeper = asyncio.create_task(self.sim.clock.sleep_until(t))
            killed = asyncio.create_task(self._killed.wait())
            done, _ = await asyncio.wait(
                {sleeper, killed}, timeout=SAFETY_TIMEOUT * 3, return_when=asyncio.FIRST_COMPLETED
            )
            sleeper.cancel()
            killed.cancel()
            self.sim.pause()
            if not done:
                raise AssertionError(f"virtual time did not reach {t}")
            if self._killed.is_set():
                await self._restart(self._pending_downtime)
            await self._check_alive()
        await asyncio.wait_for(self.sim.server.wait_processed(t), SAFETY_TIMEOUT)

    async def _do(self, step: Step) -> None:
        self._trace(f"step {step.action} planned {step.at} {step.kinds or ''}{step.kill_point}")
        if step.action == "faults":
            await self._post_faults(step.faults)
            self.outcome.faults.update(step.kinds)
        elif step.action == "clear":
            await self._post_faults(CLEAR)
        elif step.action == "kill":
            await self._kill_at(step)
        elif step.action == "hook":
            await self._arm_refusals(step)
        elif step.action == "halt":
            await self._cli("halt", step.strategy, "--reason", "chaos")
            self._halted[step.strategy] = self.sim.clock.now() + HALT_SLACK
        elif step.action == "resume":
            since = self._halted.pop(step.strategy, None)
            if since is not None:
                self._halts.append((step.strategy, since, self.sim.clock.now()))
            await self._cli("resume", step.strategy)

    # -- kills -------------------------------------------------------------------------

    async def _kill_at(self, step: Step) -> None:
        """Kill now ("random"), or arm the hook of the step's kill point: its callback kills
        at the hit. If it is not hit within an hour of virtual time, kill anyway."""
        self._pending_downtime = step.downtime
        if step.kill_point == "random":
            self._kill("random")
            await self._restart(step.downtime)
            return
        hook = {"name": "kill", **KILL_HOOKS[step.kill_point], **step.hook}
        if hook.get("kind", "request") == "request":
            hook["hold_seconds"] = KILL_HOLD
        armed = await self._arm(hook)
        self._aim(armed, step.kill_point)
        if step.kill_point == "reconciliation":
            await self._post_faults({"drop_trade_streams": True})
        day = step.at.date().isoformat()
        session_end = next(s.finish for s in self.plan.window.sessions if s.day == day)
        deadline = min(step.at + timedelta(hours=1), ny(day, "15:30"), session_end)
        await self._advance(deadline)
        if self._kill_hook is armed and not armed.hits:  # never hit: a random kill instead
            self.sim.server.hooks.clear()
            self._kill_hook = None
            self.outcome.aimed[step.kill_point] += 1
            self._kill(f"random (aimed at {step.kill_point}, not reached)")
            await self._restart(step.downtime)

    def _aim(self, hook: Hook, point: str) -> None:
        """Kill the daemon from ``hook``'s callback, at the instant it is hit."""
        self._kill_hook = hook
        self._kill_point = point

        def hit(hooked: Hook) -> None:
            if self._up_since is None or self._killed.is_set():
                self._kill_hook = None  # down already (another kill): nothing to aim at
                hooked.release()
                return
            self._kill(point)
            self.outcome.aimed[point] += 1

        hook.callback = hit

    async def _arm(self, body: dict[str, object]) -> Hook:
        """POST /sim/hooks, as any client would; the armed hook's object on this loop."""
        request = urllib.request.Request(
            f"{self.sim.url}/sim/hooks",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        await asyncio.to_thread(_send, request)
        hook = self.sim.server.hooks.get(str(body["name"]))
        assert hook is not None
        return hook

    async def _arm_refusals(self, step: Step) -> None:
        """Arm a refusal sequence; across a restart, its first refusal is also a kill."""
        hook = await self._arm(step.hook)
        self._refusal_hook = hook
        self.outcome.refusals += 1
        if step.kill_point == "restart":
            self._pending_downtime = timedelta(minutes=1)
            self._aim(hook, "submission")

    def _kill(self, point: str) -> None:
        """SIGKILL now (from a hook's callback too: no await before the signal)."""
        self._trace(f"SIGKILL at {point}")
        assert self.daemon.proc is not None
        self.daemon.proc.kill()
        self._went_down()
        self.outcome.kills[point] += 1
        self._killed.set()

    async def _settle_kill(self) -> None:
        """After the process is gone: was the aimed kill in place? Then let the simulator
        go on with the held request."""
        assert self.daemon.proc is not None
        await asyncio.to_thread(self.daemon.proc.wait, 30)
        hook, self._kill_hook = self._kill_hook, None
        if hook is None or not hook.hits:
            return
        if hook.kind == "trade_update":
            seen = hook.seen[-1]
            had = self.daemon.query(
                "SELECT 1 FROM fills WHERE broker_order_id = ? AND CAST(cum_qty AS REAL) >= ?",
                (seen["order_id"], float(seen["filled_qty"] or 0)),
            )
            landed = not had
        else:
            landed = hook.holding
        self._trace(f"aimed kill at {self._kill_point}: {'landed' if landed else 'missed'}")
        self.outcome.landed[self._kill_point] += landed
        hook.release()

    async def _restart(self, downtime: timedelta) -> None:
        """The daemon is down for ``downtime`` of virtual time (fills may happen meanwhile),
        then starts again on the same state directory with the clock frozen until READY."""
        await self._settle_kill()
        self._killed.clear()
        # A silent window lasts virtual seconds, and the clock stands still while the daemon
        # starts: it would never end, and no startup connects to a socket that never answers.
        await self._post_faults({"silent_trade_seconds": 0.0, "silent_data_seconds": 0.0})
        if downtime:
            target = self.sim.clock.now() + downtime
            self.sim.clock.set_speed(self.speed)
            await asyncio.wait_for(self.sim.clock.sleep_until(target), SAFETY_TIMEOUT)
            self.sim.pause()
        await self._start()

    async def _start(self) -> None:
        self._trace("start")
        self.daemon.start()
        await self.daemon.wait_ready()
        self._up_since = self.sim.clock.now()
        self._trace("READY")

    def _trace(self, what: str) -> None:
        """One line of what the runner did, in the scenario's folder (plan.log)."""
        with (self.workdir / "plan.log").open("a") as handle:
            handle.write(f"{self.sim.clock.now().isoformat()} {what}\n")

    def _went_down(self) -> None:
        if self._up_since is not None:
            self._up.append((self._up_since, self.sim.clock.now()))
        self._up_since = None

    async def _check_alive(self) -> None:
        proc = self.daemon.proc
        if proc is not None and proc.poll() is not None and not self._killed.is_set():
            self._went_down()
            self.outcome.violations.append(
                f"daemon exited by itself ({proc.returncode}) at {self.sim.clock.now()}"
            )
            await self._start()

    # -- watching while time runs ------------------------------------------------------

    async def _watch(self) -> None:
        """Note when the ledger learns of each fill, while the daemon is up."""
        while True:
            await asyncio.sleep(POLL)
            if self._up_since is None or self.daemon.proc is None:
                continue
            self._note_known_fills()

    def _note_known_fills(self) -> None:
        """When the daemon learned of each fill (virtual time): a fill the stream never
        delivered is known only once the open-order poll (every 5 wall seconds: minutes of
        virtual time at test speed) or a reconciliation brings it."""
        now = self.sim.clock.now()
        for row in self.daemon.query("SELECT broker_order_id, cum_qty FROM fills"):
            self._known.setdefault((row["broker_order_id"], Decimal(row["cum_qty"])), now)

    # -- checkpoints -------------------------------------------------------------------

    async def _checkpoint(self, *, closed: bool) -> None:
        """At a virtual close: faults off, time creeping, until the ledger matches the
        broker (or the wait runs out: then what still differs is a violation); then what
        must hold after the close (the market is shut: waiting cannot make it hold)."""
        await self._post_faults(CLEAR)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SETTLE_WALL
        self.sim.clock.set_speed(SETTLE_SPEED)
        while True:
            broker = BrokerView.read(self.sim)
            problems = [
                *invariants.fills_exactly_once(broker, self.daemon),
                *invariants.positions_add_up(broker, self.daemon),
            ]
            if not problems or loop.time() > deadline:
                break
            await asyncio.sleep(0.2)
        self.sim.pause()
        if closed:
            problems += invariants.bear_trap_flat_after_close(broker, self.daemon)
            problems += invariants.broker_flat(broker) if self._alone() else []
        now = self.sim.clock.now()
        self.outcome.violations += [f"{now} close: {p}" for p in problems]

    async def _finish(self) -> None:
        """Stop cleanly, then check everything against the broker and the files."""
        await self._checkpoint(closed=False)
        for strategy, since in self._halted.items():
            self._halts.append((strategy, since, self.sim.clock.now()))
        code = await self.daemon.stop()
        self._went_down()
        if code != 0:
            self.outcome.violations.append(f"SIGTERM stop exited {code}")
        now = self.sim.clock.now()
        broker = BrokerView.read(self.sim)
        self.outcome.orders = len(broker.orders)
        refusals = self._refusal_hook is not None or any(
            "refused" in kind or "rejected" in kind for kind in self.outcome.faults
        )
        self.outcome.violations += invariants.final_violations(
            self.sim, self.daemon, now, refusals=refusals
        )
        self.outcome.unprotected_reported += invariants.unprotected_reports(self.daemon)
        self.outcome.violations += invariants.no_entry_while_halted(
            broker, self.daemon, self._halts
        )
        self.outcome.violations += invariants.bear_trap_stop_gaps(
            broker, self._up, self._known, self._stop_allowance()
        )
        self.outcome.violations += invariants.refusals_logged(self.daemon)
        hook = self._refusal_hook
        if hook is not None and hook.hits:
            self.outcome.refusals_reached += 1

    def _alone(self) -> bool:
        """Whether Bear Trap trades alone (then the broker holds nothing after the close)."""
        return self.plan.config == "bear_trap"

    def _stop_allowance(self) -> timedelta:
        """How long Bear Trap's shares may wait for their stop while the daemon is up.

        Alpaca refuses a sell stop while the entry buy still works (a potential wash trade),
        so the stop goes in after the entry's last fill, or after the router cancels the
        entry's remainder two minutes after its first fill; the cancel, or a resize by
        replace, takes the broker's latency to be confirmed; a refused or failed placement
        is tried again at the next minute's tick; one more minute for the next bar."""
        options = self.plan.exchange_options
        latencies = options.get("cancel_latency", 2.0) + options.get("replace_latency", 2.0)
        refusals = timedelta(minutes=self.plan.refusals)  # a bar for each refused attempt
        return STOP_ALLOWANCE + refusals + timedelta(seconds=latencies)

    # -- plumbing ----------------------------------------------------------------------

    async def _post_faults(self, fields: dict[str, object]) -> None:
        """POST /sim/faults, as any client of the simulator would."""
        request = urllib.request.Request(
            f"{self.sim.url}/sim/faults",
            data=json.dumps(fields).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        # The simulator is served on this loop: the request is made from a thread.
        await asyncio.to_thread(_send, request)

    async def _cli(self, *args: str) -> None:
        command = [sys.executable, "-m", "magellan_daemon", *args]
        command += ["--config", str(self.config), "--state-dir", str(self.daemon.state_dir)]
        done = await asyncio.to_thread(
            subprocess.run, command, cwd=REPO, capture_output=True, text=True, timeout=60
        )
        if done.returncode != 0:
            self.outcome.violations.append(f"magellan {' '.join(args)}: {done.stderr.strip()}")


def _send(request: urllib.request.Request) -> None:
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def _is_bear_trap(fill: dict, broker: BrokerView) -> bool:
    return any(
        o["id"] == fill["order_id"] and o["client_order_id"].startswith("mg-bt-")
        for o in broker.orders
    )


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _bear_trap_config() -> dict[str, Edit | list[Edit]]:
    """The repo's configs with Bear Trap alone (a refusal scenario's one trade)."""
    edits: dict[str, Edit | list[Edit]] = dict(only("bear_trap"))
    edits["magellan.toml"] = [*only("bear_trap")["magellan.toml"], _NO_METRICS_PORT]
    return edits


_NO_METRICS_PORT: Edit = ('feed = "iex"', 'feed = "iex"\nmetrics_port = 0')


def _chaos_config() -> dict[str, Edit | list[Edit]]:
    """The repo's configs, made to trade more (more orders to break): Hourly Swing's bands
    narrowed so RSI crosses them often, Bear Trap entering on shallower crashes."""
    return {
        "magellan.toml": ('feed = "iex"', 'feed = "iex"\nmetrics_port = 0'),
        "hourly_swing.toml": [
            (
                "TSLA = { rsi_period = 14, upper = 60, lower = 40 }",
                "TSLA = { rsi_period = 14, upper = 52, lower = 48 }",
            ),
            (
                "NVDA = { rsi_period = 28, upper = 55, lower = 45 }",
                "NVDA = { rsi_period = 14, upper = 52, lower = 48 }",
            ),
        ],
        "bear_trap.toml": [
            ("min_drop_pct = 0.15 ", "min_drop_pct = 0.10 "),
            ("volume_multiple = 1.20 ", "volume_multiple = 1.00 "),
        ],
    }


def _busy_config() -> dict[str, Edit | list[Edit]]:
    """The chaos configs with room for a busy day's Bear Trap trades: smaller positions
    (a cash account of $100,000 holds several at once), more of them a day."""
    edits = _chaos_config()
    # The daemon's own REST budget is the simulator's raised one (see BUSY_RATE_LIMIT): at
    # 1000x, Alpaca's 200 a wall minute throttled a stop's placement for hours of market time.
    edits["magellan.toml"] = [
        edits["magellan.toml"],  # type: ignore[list-item]
        (
            'secret_env = "APCA_API_SECRET_KEY"\n',
            f'secret_env = "APCA_API_SECRET_KEY"\nrequests_per_minute = {BUSY_RATE_LIMIT}\n',
        ),
    ]
    edits["bear_trap.toml"] = [
        *edits["bear_trap.toml"],  # type: ignore[misc]
        ("max_position_dollars = 50_000\n", "max_position_dollars = 12_000\n"),  # sizing
        ("max_open_positions = 5", "max_open_positions = 8"),
        ("max_position_dollars = 50_000\n", "max_position_dollars = 12_000\n"),  # risk
        ("max_trades_per_day = 10", "max_trades_per_day = 40"),
    ]
    return edits


CONFIGS = {"chaos": _chaos_config, "busy": _busy_config, "bear_trap": _bear_trap_config}
