"""Assembling one daemon for a mode: clock, (embedded) simulator, endpoints, helpers.

Sim and paper differ only in the URLs and keys handed to the same adapter. In sim mode the
embedded simulator runs in this process, on this event loop, sharing the daemon's
``VirtualClock``. With ``--broker-url`` pointing at a Magellan simulator (it answers
``GET /sim/clock``), the daemon rebuilds the simulator's clock from its published anchor and
keeps following it, so two processes run on one virtual time.

Helpers (sim only): ``--sim-until`` stops the daemon at a virtual instant; the fast-forward
jumps the virtual clock over closed-market stretches in which nothing is due (the overnight
and weekend hours would otherwise cost most of a run's wall time).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from magellan_core.clock import Clock, VirtualClock, WallClock
from magellan_daemon.config.loading import MagellanConfig
from magellan_daemon.node.daemon import Daemon
from magellan_daemon.node.endpoint import Endpoint
from magellan_daemon.tasks import spawn

log = logging.getLogger("magellan")
FAST_FORWARD_MARGIN = timedelta(minutes=2)
FOLLOW_POLL_SECONDS = 0.05


@dataclass
class Runtime:
    """A daemon plus what its mode needs around it."""

    daemon: Daemon
    clock: Clock
    mode: str
    sim_server: Any = None
    until: datetime | None = None
    skip_closed: bool = False
    speed: float = 0.0
    follow_url: str | None = None  # a separate simulator whose clock we follow
    helper_tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start_helpers(self) -> None:
        """Start the sim clock (embedded simulator) and the sim-only helper tasks."""
        if self.sim_server is not None and isinstance(self.clock, VirtualClock):
            self.clock.set_speed(self.speed)
        if self.until is not None:
            self.helper_tasks.append(spawn(self._stop_at_until(), name="sim-until"))
        if self.follow_url is not None and isinstance(self.clock, VirtualClock):
            self.helper_tasks.append(spawn(self._follow_clock(), name="follow-clock"))
        if (
            self.skip_closed
            and isinstance(self.clock, VirtualClock)
            and self.sim_server is not None
        ):
            self.helper_tasks.append(spawn(self._fast_forward(), name="fast-forward"))

    async def stop_helpers(self) -> None:
        """Cancel the helper tasks."""
        for task in self.helper_tasks:
            task.cancel()
        await asyncio.gather(*self.helper_tasks, return_exceptions=True)

    async def close(self) -> None:
        """Stop the embedded simulator (after the daemon)."""
        if self.sim_server is not None:
            await self.sim_server.stop()

    async def _stop_at_until(self) -> None:
        assert self.until is not None
        await self.clock.sleep_until(self.until)
        log.info("virtual time reached --sim-until %s", self.until.isoformat())
        self.daemon.request_stop()

    async def _follow_clock(self) -> None:
        """Re-anchor on the separate simulator's clock whenever it jumps or changes speed."""
        import aiohttp

        clock = self.clock
        assert isinstance(clock, VirtualClock) and self.follow_url is not None
        async with aiohttp.ClientSession() as session:
            while True:
                try:
                    async with session.get(f"{self.follow_url}/sim/clock") as response:
                        anchor = await response.json()
                    if clock.adopt(anchor):
                        log.info("following the simulator's clock: now %s", clock.now().isoformat())
                except (aiohttp.ClientError, ValueError, KeyError) as exc:
                    log.warning("simulator clock unreadable: %s", exc)
                # Between two polls the daemon extrapolates the old anchor: at 1000x a 50 ms
                # poll keeps it within 50 virtual seconds of a simulator that paused or jumped.
                await asyncio.sleep(FOLLOW_POLL_SECONDS)

    async def _fast_forward(self) -> None:
        clock = self.clock
        assert isinstance(clock, VirtualClock)
        while True:
            await asyncio.sleep(0.2)
            target = self._fast_forward_target()
            if target is not None:
                log.info("market closed, nothing due: fast-forward to %s", target.isoformat())
                clock.set(target)

    def _fast_forward_target(self) -> datetime | None:
        daemon = self.daemon
        now = self.clock.now()
        session = daemon.sessions.current_or_next(now)
        if session is None or session.open <= now or daemon.router.busy():
            return None
        candidates = [session.open - FAST_FORWARD_MARGIN]
        candidates += [j.when - FAST_FORWARD_MARGIN for j in daemon.scheduler.planned()]
        if self.until is not None:
            candidates.append(self.until)
        target = min(candidates)
        return target if target - now > timedelta(minutes=10) else None


async def build_runtime(
    config: MagellanConfig,
    mode: str,
    keys: dict[str, tuple[str, str] | None],
    args: argparse.Namespace,
) -> Runtime:
    """Build the clock, endpoints and daemon for ``mode`` (announced in one loud line)."""
    state_dir = (
        args.state_dir
        or (Path(os.environ["STATE_DIRECTORY"]) if os.environ.get("STATE_DIRECTORY") else None)
        or config.state_dir
    )
    log_dir = args.log_dir or state_dir / "trades"
    sim_server = None
    if mode == "sim":
        log.warning(
            "MODE: SIM - embedded Alpaca simulator (%s), virtual time at %gx: no real orders",
            "no Alpaca keys in the environment" if not args.sim else "--sim",
            args.sim_speed,
        )
        clock, sim_server, endpoints = await _embedded_sim(config, args)
        log.info("simulator at %s, virtual time %s", sim_server.url, clock.now().isoformat())
    else:
        clock, endpoints = _alpaca_endpoints(config, mode, keys, args.broker_url)
        if mode == "live":
            log.warning(
                "MODE: LIVE - REAL MONEY on Alpaca's live API (accounts: %s)", ", ".join(endpoints)
            )
        elif args.broker_url:
            log.warning(
                "MODE: PAPER against %s (%s clock)",
                args.broker_url,
                "the simulator's virtual" if isinstance(clock, VirtualClock) else "wall",
            )
        else:
            log.warning("MODE: PAPER - Alpaca paper trading (accounts: %s)", ", ".join(endpoints))
    daemon = Daemon(
        config=config,
        endpoints=endpoints,
        clock=clock,
        state_dir=state_dir,
        log_dir=log_dir,
        mode=mode,
    )
    return Runtime(
        daemon=daemon,
        clock=clock,
        mode=mode,
        sim_server=sim_server,
        until=args.sim_until,
        skip_closed=mode == "sim" and args.skip_closed,
        speed=args.sim_speed,
        follow_url=args.broker_url
        if isinstance(clock, VirtualClock) and sim_server is None
        else None,
    )


async def _embedded_sim(
    config: MagellanConfig, args: argparse.Namespace
) -> tuple[VirtualClock, Any, dict[str, Endpoint]]:
    from magellan_sim.factory import DEFAULT_START, SimOptions, build_exchange
    from magellan_sim.server.server import SimServer

    # The clock stays frozen while the daemon starts (warm-up takes wall seconds that would
    # otherwise be virtual hours); ``Runtime.start_helpers`` sets the speed once READY.
    options = SimOptions(
        bars_dir=args.sim_bars,
        start=args.sim_start or DEFAULT_START,
        speed=0.0,
        seed=args.sim_seed,
    )
    exchange = build_exchange(options)
    server = SimServer(exchange, host="127.0.0.1", port=0)
    await server.start()
    endpoints = {
        name: Endpoint(
            account=name,
            key=f"sim-{name}",
            secret="sim-secret",
            paper=True,
            trading_url=server.url,
            data_url=server.url,
            trading_ws=server.trading_ws_url,
            data_ws=server.data_ws_url(config.feed),
        )
        for name in config.accounts
    }
    return exchange.clock, server, endpoints


def _alpaca_endpoints(
    config: MagellanConfig,
    mode: str,
    keys: dict[str, tuple[str, str] | None],
    broker_url: str | None,
) -> tuple[Clock, dict[str, Endpoint]]:
    clock: Clock = WallClock()
    ws_base = None
    if broker_url:
        broker_url = broker_url.rstrip("/")
        ws_base = broker_url.replace("http://", "ws://").replace("https://", "wss://")
        anchor = _sim_clock_anchor(broker_url)
        if anchor is not None:
            clock = VirtualClock.from_anchor(anchor)
    endpoints = {}
    for name in config.accounts:
        key_pair = keys.get(name) or ("sim-" + name, "sim-secret")
        endpoints[name] = Endpoint(
            account=name,
            key=key_pair[0],
            secret=key_pair[1],
            paper=mode != "live",
            trading_url=broker_url,
            data_url=broker_url,
            trading_ws=None if ws_base is None else f"{ws_base}/stream",
            data_ws=None if ws_base is None else f"{ws_base}/v2/{config.feed}",
        )
    return clock, endpoints


def _sim_clock_anchor(url: str) -> dict[str, Any] | None:
    """The simulator's clock anchor when ``url`` is a Magellan simulator, else None."""
    try:
        with urllib.request.urlopen(f"{url}/sim/clock", timeout=5) as response:
            body = json.loads(response.read())
    except (OSError, ValueError):
        return None
    return body if isinstance(body, dict) and "anchor_wall" in body else None
