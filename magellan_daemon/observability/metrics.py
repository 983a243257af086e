"""Prometheus metrics and ``/healthz`` on 127.0.0.1 only.

One ``CollectorRegistry`` per daemon (no module-global registry), served by a small aiohttp
app on the daemon's own event loop — so a scrape also proves the loop answers. Counters are
incremented where things happen (the event sink, the router); gauges that mirror state the
daemon already keeps (stream flags, throttle waits, P&L) are read at scrape time.

``/healthz`` answers 200 only when every task the daemon cannot trade without is alive, every
trade stream is connected and the event loop's lag is under ``HEALTHY_LAG_SECONDS``;
otherwise 503 with the reason.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

log = logging.getLogger(__name__)
HEALTHY_LAG_SECONDS = 2.0
LAG_PROBE_SECONDS = 0.5


class Metrics:
    """Every metric of one daemon, in its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.orders = Counter(
            "magellan_orders", "Order state changes", ["strategy", "status"], registry=r
        )
        self.fills = Counter("magellan_fills", "Fill increments applied", ["strategy"], registry=r)
        self.rejects = Counter(
            "magellan_rejects", "Orders rejected by the broker", ["strategy"], registry=r
        )
        self.not_sent = Counter(
            "magellan_intents_not_sent",
            "Intents not sent (a gate, nothing to sell, a step that failed)",
            ["strategy"],
            registry=r,
        )
        self.submit_latency = Histogram(
            "magellan_submit_latency_seconds",
            "Wall time of one order submission (HTTP round trip)",
            registry=r,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.unprotected = Gauge(
            "magellan_unprotected_positions",
            "Positions without a working stop or exit for more than one bar",
            registry=r,
        )
        self.held_past_close = Gauge(
            "magellan_positions_held_past_close",
            "Positions of intraday strategies still held after the close",
            registry=r,
        )
        self.router_queue = Gauge("magellan_router_in_flight", "Intents being executed", registry=r)
        self.throttle_wait = Gauge(
            "magellan_throttle_wait_seconds",
            "Total wall time waited for the rate budget",
            ["account"],
            registry=r,
        )
        self.stream_connected = Gauge(
            "magellan_stream_connected", "1 when the websocket is connected", ["stream"], registry=r
        )
        self.stream_reconnects = Gauge(
            "magellan_stream_reconnects", "Reconnections since start", ["stream"], registry=r
        )
        self.stream_bad_frames = Gauge(
            "magellan_stream_bad_frames",
            "Frames dropped as unreadable since start",
            ["stream"],
            registry=r,
        )
        self.broker_requests = Gauge(
            "magellan_broker_requests", "REST requests since start", ["account"], registry=r
        )
        self.broker_errors = Gauge(
            "magellan_broker_errors",
            "REST requests that failed (HTTP error or timeout) since start",
            ["account"],
            registry=r,
        )
        self.submissions = Gauge(
            "magellan_order_submissions",
            "Order POSTs since start by outcome (accepted, rejected, unknown: looked up after)",
            ["outcome"],
            registry=r,
        )
        self.router_failures = Gauge(
            "magellan_router_failures", "Intents whose execution raised, since start", registry=r
        )
        self.events_applied = Gauge(
            "magellan_broker_events_applied", "Broker order events applied since start", registry=r
        )
        self.events_unknown = Gauge(
            "magellan_broker_events_unknown",
            "Broker order events for orders that are not ours, since start",
            registry=r,
        )
        self.strategy_errors = Gauge(
            "magellan_strategy_errors",
            "Strategy calls that raised (no intent for that symbol), since start",
            ["strategy"],
            registry=r,
        )
        self.discrepancies = Counter(
            "magellan_reconcile_discrepancies", "Discrepancies found by reconciliation", registry=r
        )
        self.loop_lag = Gauge(
            "magellan_event_loop_lag_seconds", "Event-loop lag (last probe)", registry=r
        )
        # Tasks alive on the daemon's loop: a leak shows as growth over days (the soak test).
        self.tasks = Gauge("magellan_asyncio_tasks", "Tasks alive on the event loop", registry=r)
        self.tasks.set_function(_task_count)
        self.bar_age = Gauge(
            "magellan_last_bar_age_seconds",
            "Virtual seconds since the last bar's end",
            ["feed"],
            registry=r,
        )
        self.pnl = Gauge(
            "magellan_realized_pnl_dollars", "Realised P&L today", ["strategy"], registry=r
        )
        self._refreshers: list[Callable[[], None]] = []
        self.last_loop_lag = 0.0

    def on_scrape(self, refresh: Callable[[], None]) -> None:
        """Call ``refresh`` before every scrape (to mirror state into gauges)."""
        self._refreshers.append(refresh)

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        for refresh in self._refreshers:
            try:
                refresh()
            except Exception:  # a scrape must not fail because one gauge could not be read
                log.exception("metrics refresh failed")
        return generate_latest(self.registry)

    async def probe_loop_lag(self) -> None:
        """Forever: measure how late a short sleep wakes up (wall time: loop health)."""
        while True:
            started = time.monotonic()
            await asyncio.sleep(LAG_PROBE_SECONDS)
            self.last_loop_lag = max(0.0, time.monotonic() - started - LAG_PROBE_SECONDS)
            self.loop_lag.set(self.last_loop_lag)


def _task_count() -> float:
    try:
        return float(len(asyncio.all_tasks()))
    except RuntimeError:  # scraped from a thread without a running loop
        return 0.0


class MetricsServer:
    """``/metrics`` and ``/healthz`` on 127.0.0.1 (never another interface)."""

    def __init__(self, metrics: Metrics, health: Callable[[], tuple[bool, str]], port: int) -> None:
        self._metrics = metrics
        self._health = health
        self._port = port
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        """Bind (port 0 = a free port) and serve."""
        app = web.Application()
        app.router.add_get("/metrics", self._serve_metrics)
        app.router.add_get("/healthz", self._serve_health)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._port)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        log.info("metrics on %s/metrics, health on %s/healthz", self.url, self.url)

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()

    async def _serve_metrics(self, request: web.Request) -> web.Response:
        body = self._metrics.render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _serve_health(self, request: web.Request) -> web.Response:
        ok, reason = self._health()
        return web.Response(status=200 if ok else 503, text=reason + "\n")
