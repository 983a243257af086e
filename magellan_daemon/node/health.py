"""What the running daemon says about itself: the snapshot ``magellan status`` reads, one
status line for people (the log and systemd's STATUS=), health for ``/healthz`` and the
watchdog, and the metrics mirrored from its parts' counters before each scrape.

It reads the daemon's parts (``ReportParts``: exactly what it reads, never the daemon itself)
and changes none of them; the one exception is the position watch, fed from the same periodic
read of the broker's positions that gives the prices.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from magellan_core.clock import Clock
from magellan_daemon.adapters.alpaca.rest import AlpacaBroker
from magellan_daemon.adapters.alpaca.stream import SupervisedStream
from magellan_daemon.errors import BrokerError, BrokerFatal
from magellan_daemon.execution.events import EventSink
from magellan_daemon.execution.order_path import OrderPath
from magellan_daemon.execution.position_guard import PositionGuard
from magellan_daemon.execution.router import OrderRouter
from magellan_daemon.ledger.control import ControlChannel
from magellan_daemon.ledger.store import Ledger
from magellan_daemon.observability import sdnotify
from magellan_daemon.observability.metrics import HEALTHY_LAG_SECONDS, Metrics
from magellan_daemon.reconciliation.recovery import Recovery
from magellan_daemon.runtime.scheduler import JobScheduler
from magellan_daemon.runtime.strategy_runner import TIMEFRAME_LENGTH, StrategyRunner
from magellan_daemon.tasks import Supervisor
from magellan_daemon.timefmt import NEW_YORK, iso

log = logging.getLogger(__name__)
STATUS_WRITE_SECONDS = 2.0
POSITION_EVERY = 5  # status ticks between two reads of the broker's positions


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportParts:
    """The parts of one daemon the report reads (the mappings are the daemon's own, filled
    as it starts)."""

    mode: str
    strategies: tuple[str, ...]  # every configured strategy, running or not
    clock: Clock
    ready: asyncio.Event
    supervisor: Supervisor
    metrics: Metrics
    ledger: Ledger
    control: ControlChannel
    router: OrderRouter
    path: OrderPath[Any]
    sink: EventSink
    guard: PositionGuard
    recovery: Recovery
    scheduler: JobScheduler
    brokers: Mapping[str, AlpacaBroker]
    runners: Mapping[str, StrategyRunner]
    trade_streams: Mapping[str, SupervisedStream]
    bar_streams: Mapping[str, SupervisedStream]


class SelfReport:
    """Status, health and metrics of one daemon."""

    def __init__(self, parts: ReportParts) -> None:
        self._d = parts
        self.prices: dict[str, str] = {}  # symbol -> the broker's last price (the page reads it)

    async def loop(self) -> None:
        """Every 2 s (wall): the snapshot `magellan status` reads. Every ~10 s: the broker's
        positions, for prices and for the position watch."""
        d = self._d
        prices = self.prices
        tick = 0
        while True:
            if tick % POSITION_EVERY == 0:
                for account in d.brokers:
                    try:
                        positions = await d.brokers[account].positions()
                    except BrokerFatal:
                        raise  # the task's end says it: entries stop, exit code 3
                    except BrokerError as exc:
                        log.warning("positions of %s unreadable: %s", account, exc)
                        continue
                    prices.update(
                        {p.symbol: str(p.current_price) for p in positions if p.current_price}
                    )
                    d.recovery.watch_positions(account, positions)
            tick += 1
            d.control.write_status(self.snapshot(prices))
            sdnotify.status(f"{d.mode}, {len(d.runners)} strategies: {self.line()}")
            await asyncio.sleep(STATUS_WRITE_SECONDS)

    def snapshot(self, prices: dict[str, str]) -> dict[str, Any]:
        """What the operator's `status` shows about the running process."""
        d = self._d
        return {
            "mode": d.mode,
            "pid": os.getpid(),
            "ready": d.ready.is_set(),
            "virtual_now": iso(d.clock.now()),
            "streams": {a: s.stats.connected for a, s in d.trade_streams.items()},
            "next_jobs": [{"name": j.name, "when": iso(j.when)} for j in d.scheduler.planned()[:5]],
            "prices": prices,
            "last_fill": d.ledger.last_fill_time(),
            "strategies": {n: {"running": n in d.runners} for n in d.strategies},
            "guard": d.guard.describe(),
        }

    def alive(self) -> bool:
        """The daemon's own tasks run and its loop answers (what the watchdog pings for)."""
        d = self._d
        return not d.supervisor.dead() and d.metrics.last_loop_lag <= HEALTHY_LAG_SECONDS

    def health(self) -> tuple[bool, str]:
        """Healthy = every critical task alive, every trade stream connected, the event loop
        responsive and the broker still accepting us."""
        d = self._d
        dead = d.supervisor.dead()
        if dead:
            return False, f"task died: {', '.join(dead)}"
        if d.router.entries_stopped:
            return False, f"broker refused us: {d.router.entries_stopped}"
        if d.guard.held_past_close:
            held = ", ".join(f"{s} {sym}" for s, sym in sorted(d.guard.held_past_close))
            return False, f"held past the close: {held}"
        if d.guard.unprotected:
            bare = ", ".join(f"{s} {sym}" for s, sym in sorted(d.guard.unprotected))
            return False, f"unprotected: {bare}"
        down = [a for a, s in d.trade_streams.items() if not s.stats.connected]
        if down:
            return False, f"trade stream down: {', '.join(down)}"
        lag = d.metrics.last_loop_lag
        if lag > HEALTHY_LAG_SECONDS:
            return False, f"event loop lagging {lag:.1f}s"
        return True, "ok"

    def refresh_metrics(self) -> None:
        """Mirror the parts' counters into the gauges (before each scrape)."""
        d = self._d
        m = d.metrics
        m.router_queue.set(d.router.stats.in_flight)
        m.unprotected.set(len(d.guard.unprotected))
        m.held_past_close.set(len(d.guard.held_past_close))
        while d.path.stats.submit_seconds:
            m.submit_latency.observe(d.path.stats.submit_seconds.popleft())
        m.router_failures.set(d.router.stats.failed)
        path = d.path.stats
        for outcome, count in (
            ("accepted", path.accepted),
            ("rejected", path.rejected),
            ("unknown", path.unknown),
        ):
            m.submissions.labels(outcome).set(count)
        m.events_applied.set(d.sink.applied)
        m.events_unknown.set(d.sink.unknown)
        for account, broker in d.brokers.items():
            m.throttle_wait.labels(account).set(broker.stats.throttle_wait_seconds)
            m.broker_requests.labels(account).set(broker.stats.requests)
            m.broker_errors.labels(account).set(broker.stats.errors)
        for stream in (*d.trade_streams.values(), *d.bar_streams.values()):
            m.stream_connected.labels(stream.name).set(1 if stream.stats.connected else 0)
            m.stream_reconnects.labels(stream.name).set(max(0, stream.stats.connects - 1))
            m.stream_bad_frames.labels(stream.name).set(stream.stats.bad_frames)
        for runner in d.runners.values():
            m.strategy_errors.labels(runner.name).set(runner.errors)
        now = d.clock.now()
        for runner in d.runners.values():
            if runner.last_bar:
                end = max(runner.last_bar.values()) + TIMEFRAME_LENGTH[runner.timeframe]
                m.bar_age.labels(runner.timeframe).set((now - end).total_seconds())
            today = now.astimezone(NEW_YORK).date()
            m.pnl.labels(runner.name).set(float(d.ledger.realized_on(runner.name, today)))

    def line(self) -> str:
        """One line a person reads: positions, next job, streams."""
        d = self._d
        positions = d.ledger.positions()
        nxt = d.scheduler.planned()
        streams = all(s.stats.connected for s in d.trade_streams.values())
        upcoming = (
            f"{nxt[0].name} at {nxt[0].when.astimezone(NEW_YORK):%Y-%m-%d %H:%M} ET"
            if nxt
            else "none"
        )
        return (
            f"{len(positions)} open positions, next job: {upcoming}, "
            f"trade stream {'connected' if streams else 'DOWN'}"
        )
