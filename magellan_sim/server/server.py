"""The simulator's HTTP server: Alpaca's wire protocol on one loopback port.

Trading REST at ``/v2/...``, market-data REST at ``/v2/stocks/...``, the trade-updates
stream at ``/stream`` (and ``/stream/``), the market-data stream at ``/v2/iex`` and
``/v2/sip``, and the ``/sim/...`` control endpoints. ``SimServer`` owns the lifecycle and
assembles its parts: the middleware (``middleware``: error shaping, then injected faults
from ``injection``, authentication, hooks, the per-key rate limit), the routes (``rest``,
``streams``, ``control``) and the minute publisher (``publisher``), which advances the
exchange at each virtual minute boundary and streams that minute's bars.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime

from aiohttp import web

from magellan_sim.exchange.exchange import Exchange
from magellan_sim.exchange.hooks import Hooks
from magellan_sim.server.auth import Credentials
from magellan_sim.server.control import ControlRoutes
from magellan_sim.server.injection import FaultInjector
from magellan_sim.server.middleware import RequestGate, add_rate_headers, error_middleware
from magellan_sim.server.publisher import MinutePublisher
from magellan_sim.server.ratelimit import RateLimiter
from magellan_sim.server.rest import RestRoutes
from magellan_sim.server.streamfaults import StreamFaults
from magellan_sim.server.streams import StreamHub

log = logging.getLogger(__name__)

MAX_BODY = 1 << 20


class SimServer:
    """The aiohttp app over one ``Exchange``, started and stopped in-process."""

    def __init__(
        self,
        exchange: Exchange,
        host: str = "127.0.0.1",
        port: int = 0,
        key: str | None = None,
        secret: str | None = None,
        rate_limit: int = 200,
        prepack_bars: bool = False,
    ) -> None:
        self.exchange = exchange
        self.host = host
        self._requested_port = port
        credentials = Credentials(key, secret)
        self.hooks = Hooks(exchange.faults, exchange.clock.now)
        self._hub = StreamHub(
            credentials,
            exchange.data.stream_bar,
            StreamFaults(exchange.faults, exchange.clock.now),
            on_trade_frame_sent=self.hooks.on_trade_frame_sent,
        )
        self._injector = FaultInjector(exchange.faults, self._hub)
        self._gate = RequestGate(credentials, RateLimiter(rate_limit), self.hooks, exchange.orders)
        self._publisher = MinutePublisher(exchange, self._hub, prepack=prepack_bars)
        self._tasks: list[asyncio.Task[None]] = []
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        exchange.add_listener(self._hub.on_trade_event)

    @property
    def url(self) -> str:
        """``http://HOST:PORT``: the REST base for TradingClient and the data client."""
        if self.port is None:
            raise RuntimeError("server not started")
        return f"http://{self.host}:{self.port}"

    @property
    def trading_ws_url(self) -> str:
        """The trade-updates stream URL (TradingStream's ``url_override``)."""
        return self.url.replace("http://", "ws://", 1) + "/stream"

    def data_ws_url(self, feed: str = "iex") -> str:
        """The market-data stream URL for ``feed`` (StockDataStream's ``url_override``)."""
        return self.url.replace("http://", "ws://", 1) + f"/v2/{feed}"

    async def start(self) -> None:
        """Bind (port 0 = a free port) and start the minute publisher."""
        self._runner = web.AppRunner(self.build_app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._requested_port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self._tasks = [
            self._publisher.start(),
            asyncio.create_task(self._injector.watch_drop_streams(), name="sim-fault-watch"),
        ]
        log.info("simulator serving on %s", self.url)

    async def stop(self) -> None:
        """Stop the background tasks, close every websocket, release the port."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self._hub.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def build_app(self) -> web.Application:
        """The aiohttp application with every route and middleware."""
        app = web.Application(
            middlewares=[
                error_middleware,
                self._injector.middleware,
                self._gate.auth,
                self._gate.hooks,
                self._gate.rate_limit,
            ],
            client_max_size=MAX_BODY,
        )
        RestRoutes(self.exchange).register(app.router)
        for path in ("/stream", "/stream/"):
            app.router.add_get(path, self._hub.trade_stream)
        for path in ("/v2/iex", "/v2/sip"):
            app.router.add_get(path, self._hub.data_stream)
        control = ControlRoutes(
            self.exchange.clock, self.exchange.faults, self.hooks, self._injector
        )
        control.register(app.router)
        app.on_response_prepare.append(add_rate_headers)
        return app

    # -- waits for tests and the daemon ------------------------------------------------------

    async def wait_processed(self, t: datetime | None = None) -> None:
        """Return once the publisher has advanced the exchange and sent the bars of every
        minute boundary up to ``t`` (default: the clock's current time), and every cancel
        or replace due by ``t`` has completed."""
        await self._publisher.wait_processed(t)

    async def wait_trade_listeners(self, key: str, count: int = 1) -> None:
        """Return once ``count`` trade-stream connections of ``key`` listen to trade_updates."""
        await self._hub.wait_until(lambda: self._hub.trade_listeners(key) >= count)

    async def wait_bar_subscribers(self, symbol: str, count: int = 1) -> None:
        """Return once ``count`` data-stream connections subscribe to ``symbol``'s bars."""
        await self._hub.wait_until(lambda: self._hub.bar_subscribers(symbol) >= count)

    async def drop_streams(self) -> int:
        """Close every open websocket once (the ``drop_streams`` fault); returns how many."""
        return await self._injector.drop_streams()
