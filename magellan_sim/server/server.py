"""The simulator's HTTP server: Alpaca's wire protocol on one loopback port.

Trading REST at ``/v2/...``, market-data REST at ``/v2/stocks/...``, the trade-updates
stream at ``/stream`` (and ``/stream/``), the market-data stream at ``/v2/iex`` and
``/v2/sip``, and the ``/sim/...`` control endpoints. Middleware, outermost first: error
shaping (a handler's unexpected exception is a logged 500, never a dead server), injected
faults, authentication, the per-key rate limit. A minute publisher advances the exchange at
each virtual minute boundary and streams that minute's bars.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import orjson
from aiohttp import web

from magellan_core import timeframes
from magellan_sim.errors import SimError
from magellan_sim.exchange.exchange import Exchange
from magellan_sim.exchange.hooks import Hook, Hooks, hook_from_json
from magellan_sim.server.auth import Credentials
from magellan_sim.server.params import parse_json_body, to_datetime, to_decimal
from magellan_sim.server.ratelimit import RateDecision, RateLimiter
from magellan_sim.server.rest import ACCOUNT_KEY, RestRoutes, json_response
from magellan_sim.server.streamfaults import StreamFaults
from magellan_sim.server.streams import StreamHub

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MINUTE = timeframes.BAR_LENGTH[timeframes.MINUTE]  # the publisher's step
STREAM_PATHS = frozenset({"/stream", "/stream/", "/v2/iex", "/v2/sip"})
RATE_DECISION = web.RequestKey("sim_rate_decision", RateDecision)
FAULT_WATCH_SECONDS = 0.05
MAX_BODY = 1 << 20


def _floor_minute(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


def _is_rest(request: web.Request) -> bool:
    path = request.path
    return (path.startswith("/v2/") and path not in STREAM_PATHS) or path.startswith("/v1/")


def _is_data_api(path: str) -> bool:
    return path.startswith(("/v2/stocks/", "/v1/corporate-actions"))


def _status_error(status: int, message: str) -> web.Response:
    return json_response({"code": status * 100_000, "message": message}, status)


@web.middleware
async def _error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Alpaca-shaped JSON for every error; an unexpected exception is a logged 500."""
    try:
        return await handler(request)
    except SimError as exc:
        return json_response(exc.body(), exc.status)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _status_error(exc.status, (exc.reason or "error").lower())
    except (asyncio.CancelledError, ConnectionError):
        raise
    except Exception:
        log.exception("unexpected error serving %s %s", request.method, request.path)
        return json_response({"code": 50010000, "message": "internal server error"}, 500)


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
    ) -> None:
        self.exchange = exchange
        self.host = host
        self._requested_port = port
        self._credentials = Credentials(key, secret)
        self._limiter = RateLimiter(rate_limit)
        self.hooks = Hooks(exchange.faults, exchange.clock.now)
        self._hub = StreamHub(
            self._credentials,
            exchange.data.stream_bar,
            StreamFaults(exchange.faults, exchange.clock.now),
            on_trade_frame_sent=self.hooks.on_trade_frame_sent,
        )
        self._fault_rng = random.Random(exchange.faults.seed)
        self._fault_seed = exchange.faults.seed
        self._processed = _floor_minute(exchange.clock.now())
        self._progress = asyncio.Condition()
        self._rescheduled = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        exchange.add_listener(self._hub.on_trade_event)
        exchange.add_schedule_listener(self._rescheduled.set)

    # -- lifecycle -------------------------------------------------------------------------

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
        self._processed = _floor_minute(self.exchange.clock.now())
        self._tasks = [
            asyncio.create_task(self._publish_minutes(), name="sim-minute-publisher"),
            asyncio.create_task(self._watch_drop_streams(), name="sim-fault-watch"),
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
                _error_middleware,
                self._fault_middleware,
                self._auth_middleware,
                self._hook_middleware,
                self._rate_limit_middleware,
            ],
            client_max_size=MAX_BODY,
        )
        RestRoutes(self.exchange).register(app.router)
        for path in ("/stream", "/stream/"):
            app.router.add_get(path, self._hub.trade_stream)
        for path in ("/v2/iex", "/v2/sip"):
            app.router.add_get(path, self._hub.data_stream)
        app.router.add_get("/sim/clock", self._get_clock)
        app.router.add_post("/sim/clock", self._post_clock)
        app.router.add_get("/sim/faults", self._get_faults)
        app.router.add_post("/sim/faults", self._post_faults)
        app.router.add_get("/sim/hooks", self._get_hooks)
        app.router.add_post("/sim/hooks", self._post_hooks)
        app.router.add_delete("/sim/hooks", self._delete_hooks)
        app.router.add_get("/sim/hooks/{name}", self._get_hook)
        app.router.add_post("/sim/hooks/{name}/release", self._release_hook)
        app.on_response_prepare.append(_add_rate_headers)
        return app

    # -- hooks for tests and the daemon ----------------------------------------------------

    async def wait_processed(self, t: datetime | None = None) -> None:
        """Return once the publisher has advanced the exchange and sent the bars of every
        minute boundary up to ``t`` (default: the clock's current time), and every cancel
        or replace due by ``t`` has completed."""
        t = t or self.exchange.clock.now()
        target = _floor_minute(t)

        def done() -> bool:
            due = self.exchange.next_due()
            return self._processed >= target and (due is None or due > t)

        async with self._progress:
            await self._progress.wait_for(done)

    async def wait_trade_listeners(self, key: str, count: int = 1) -> None:
        """Return once ``count`` trade-stream connections of ``key`` listen to trade_updates."""
        await self._hub.wait_until(lambda: self._hub.trade_listeners(key) >= count)

    async def wait_bar_subscribers(self, symbol: str, count: int = 1) -> None:
        """Return once ``count`` data-stream connections subscribe to ``symbol``'s bars."""
        await self._hub.wait_until(lambda: self._hub.bar_subscribers(symbol) >= count)

    async def drop_streams(self) -> int:
        """Close every open websocket once (the ``drop_streams`` fault); returns how many."""
        self.exchange.faults.drop_streams = False
        dropped = await self._hub.close_all()
        log.info("fault injection dropped %d websocket(s)", dropped)
        return dropped

    def _reseed_faults(self) -> None:
        self._fault_seed = self.exchange.faults.seed
        self._fault_rng = random.Random(self._fault_seed)
        self._hub.faults.reseed()

    async def _apply_drop_faults(self) -> None:
        """Act on the ``drop_*`` switches that are set, once each."""
        faults = self.exchange.faults
        if faults.drop_streams:
            await self.drop_streams()
        for name, kind in (("drop_trade_streams", "trade"), ("drop_data_streams", "data")):
            if getattr(faults, name):
                setattr(faults, name, False)
                dropped = await self._hub.close_all(trade=kind == "trade", data=kind == "data")
                log.info("fault injection dropped %d %s websocket(s)", dropped, kind)

    # -- middleware ------------------------------------------------------------------------

    @web.middleware
    async def _fault_middleware(self, request: web.Request, handler: Handler) -> Any:
        """Injected latency and HTTP errors on REST requests, decided before the core runs."""
        if not _is_rest(request):
            return await handler(request)
        faults = self.exchange.faults
        await self._apply_drop_faults()
        if faults.latency_ms > 0:
            await asyncio.sleep(faults.latency_ms / 1000)
        if faults.seed != self._fault_seed:
            self._reseed_faults()
        if faults.http_error_rate > 0 and self._fault_rng.random() < faults.http_error_rate:
            status = faults.http_status
            return _status_error(status, f"injected fault: http {status}")
        response = await handler(request)
        rate = faults.http_error_after_rate
        if rate > 0 and self._fault_rng.random() < rate:
            # the core has done the work (an order may now exist): only the answer is lost
            status = faults.http_status
            return _status_error(status, f"injected fault: http {status} after processing")
        return response

    @web.middleware
    async def _auth_middleware(self, request: web.Request, handler: Handler) -> Any:
        """Identify the account from the credentials; 401 when they are refused."""
        if not _is_rest(request):
            return await handler(request)
        account = self._credentials.account_for_headers(request.headers)
        if account is None:
            return json_response({"code": 40110000, "message": "request is not authorized"}, 401)
        request[ACCOUNT_KEY] = account
        return await handler(request)

    @web.middleware
    async def _hook_middleware(self, request: web.Request, handler: Handler) -> Any:
        """The armed hooks (``sim.hooks``): hit before the core handles the request or
        once its answer is ready, each maybe holding the request there for a while."""
        if not _is_rest(request) or not self.hooks.wants_requests():
            return await handler(request)
        cid = await self._client_order_id(request)
        hook = self.hooks.match_request(request.method, request.path, cid, "before")
        if hook is not None:
            await self.hooks.hold(hook)
        response = await handler(request)
        hook = self.hooks.match_request(request.method, request.path, cid, "after")
        if hook is not None:
            await self.hooks.hold(hook)
        return response

    async def _client_order_id(self, request: web.Request) -> str | None:
        """The client_order_id of the order a request carries (POST) or names (by id)."""
        if request.method == "POST" and request.path == "/v2/orders":
            try:
                body = orjson.loads(await request.read() or b"{}")
            except orjson.JSONDecodeError:
                return None
            cid = body.get("client_order_id") if isinstance(body, dict) else None
            return cid if isinstance(cid, str) else None
        if "client_order_id" in request.query:
            return request.query["client_order_id"]
        order_id = request.match_info.get("order_id")
        if order_id is None:
            return None
        try:
            order = self.exchange.orders.get_order(request[ACCOUNT_KEY], order_id)
        except SimError:
            return None
        cid = order.get("client_order_id")
        return cid if isinstance(cid, str) else None

    @web.middleware
    async def _rate_limit_middleware(self, request: web.Request, handler: Handler) -> Any:
        """Per key and API (trading vs market data), N requests per rolling wall minute."""
        if not _is_rest(request):
            return await handler(request)
        api = "data" if _is_data_api(request.path) else "trading"
        decision = self._limiter.check(f"{api}:{request[ACCOUNT_KEY]}")
        request[RATE_DECISION] = decision
        if not decision.allowed:
            return json_response({"code": 42910000, "message": "rate limit exceeded"}, 429)
        return await handler(request)

    # -- control endpoints -------------------------------------------------------------------

    def _clock_state(self) -> dict[str, Any]:
        clock = self.exchange.clock
        state: dict[str, Any] = {"now": clock.now().isoformat()}
        if hasattr(clock, "anchor"):
            state.update(clock.anchor())
        else:
            state["speed"] = 1.0
        state.setdefault("speed", getattr(clock, "speed", 1.0))
        return state

    async def _get_clock(self, request: web.Request) -> web.Response:
        """GET /sim/clock: virtual now, speed and the clock's affine anchor."""
        return json_response(self._clock_state())

    async def _post_clock(self, request: web.Request) -> web.Response:
        """POST /sim/clock {"set": iso, "advance_seconds": s, "speed": x} (any subset)."""
        clock = self.exchange.clock
        if not hasattr(clock, "set_speed"):
            raise SimError(422, 42210000, "the simulator runs on a clock that cannot be set")
        body = parse_json_body(await request.read())
        target = to_datetime(body.get("set"), "set")
        advance = to_decimal(body.get("advance_seconds"), "advance_seconds", positive=False)
        speed = to_decimal(body.get("speed"), "speed", positive=False)
        try:
            if target is not None:
                clock.set(target)
            if advance is not None:
                clock.advance(float(advance))
            if speed is not None:
                clock.set_speed(float(speed))
        except (ValueError, TypeError, OverflowError) as exc:
            raise SimError(422, 40010001, str(exc)) from exc
        return json_response(self._clock_state())

    async def _get_faults(self, request: web.Request) -> web.Response:
        """GET /sim/faults: the current fault settings."""
        return json_response(self.exchange.faults.as_dict())

    async def _post_faults(self, request: web.Request) -> web.Response:
        """POST /sim/faults {field: value, ...}: update the faults (422 names a bad field)."""
        try:
            body = orjson.loads(await request.read() or b"{}")
        except orjson.JSONDecodeError as exc:
            raise SimError(400, 40010000, "malformed request body: invalid JSON") from exc
        if not isinstance(body, dict):
            raise SimError(400, 40010000, "malformed request body: expected a JSON object")
        try:
            self.exchange.faults.update(**body)
        except ValueError as exc:
            raise SimError(422, 40010001, str(exc)) from exc
        if "seed" in body:
            # setting the seed, even to its current value, restarts the fault sequence
            self._reseed_faults()
        await self._apply_drop_faults()
        return json_response(self.exchange.faults.as_dict())

    async def _get_hooks(self, request: web.Request) -> web.Response:
        """GET /sim/hooks: every hook with its hits."""
        return json_response([h.as_dict() for h in self.hooks.all()])

    async def _post_hooks(self, request: web.Request) -> web.Response:
        """POST /sim/hooks {name, kind, method, path, client_order_id, event, when,
        hold_seconds, faults, times}: arm a hook (422 names a bad field)."""
        try:
            body = orjson.loads(await request.read() or b"{}")
        except orjson.JSONDecodeError as exc:
            raise SimError(400, 40010000, "malformed request body: invalid JSON") from exc
        if not isinstance(body, dict):
            raise SimError(400, 40010000, "malformed request body: expected a JSON object")
        try:
            hook = hook_from_json(body)
        except ValueError as exc:
            raise SimError(422, 40010001, str(exc)) from exc
        return json_response(self.hooks.arm(hook).as_dict())

    async def _delete_hooks(self, request: web.Request) -> web.Response:
        """DELETE /sim/hooks: release and forget every hook."""
        self.hooks.clear()
        return json_response([])

    async def _get_hook(self, request: web.Request) -> web.Response:
        """GET /sim/hooks/{name}[?wait=SECONDS]: the hook, after waiting (wall seconds, at
        most 60) for its first hit when ``wait`` is given."""
        hook = self._named_hook(request)
        wait = to_decimal(request.query.get("wait"), "wait", positive=False)
        if wait is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(hook.wait_hit(), min(float(wait), 60.0))
        return json_response(hook.as_dict())

    async def _release_hook(self, request: web.Request) -> web.Response:
        """POST /sim/hooks/{name}/release: let the request held at the hook go on."""
        hook = self._named_hook(request)
        hook.release()
        return json_response(hook.as_dict())

    def _named_hook(self, request: web.Request) -> Hook:
        hook = self.hooks.get(request.match_info["name"])
        if hook is None:
            raise SimError(404, 40410000, "hook not found")
        return hook

    # -- background tasks ------------------------------------------------------------------

    async def _publish_minutes(self) -> None:
        """At each virtual minute boundary: advance the exchange, stream that minute's bars.
        Between boundaries, wake when a cancel or replace in flight comes due, so its event
        leaves on time even when no request arrives."""
        clock = self.exchange.clock
        failed: datetime | None = None  # a due instant whose processing failed: not again
        while True:
            boundary = self._processed + MINUTE
            due = self.exchange.next_due()
            wake = boundary if due is None or due == failed else min(boundary, due)
            if not await self._sleep_until(wake):
                continue  # a new cancel/replace was put in flight: re-plan the wake-up
            if clock.now() < boundary:
                if not self._advance("a cancel or replace due at", wake):
                    failed = wake
                async with self._progress:
                    self._progress.notify_all()
                continue
            if not self._hub.wants_bars():
                # nobody streams bars: catch up in one step instead of minute by minute
                boundary = max(boundary, _floor_minute(clock.now()))
            if self._advance("the minute publisher at", boundary) and self._hub.wants_bars():
                try:
                    self._hub.publish_bars(self.exchange.market.minute_bars_ending_at(boundary))
                except Exception:
                    log.exception("minute publisher failed at %s", boundary.isoformat())
            async with self._progress:
                self._processed = boundary
                self._progress.notify_all()
            # a jump of many minutes must not starve the socket writers
            await asyncio.sleep(0)

    def _advance(self, what: str, t: datetime) -> bool:
        try:
            self.exchange.advance()
        except Exception:
            log.exception("%s %s failed", what, t.isoformat())
            return False
        return True

    async def _sleep_until(self, wake: datetime) -> bool:
        """Sleep on the virtual clock until ``wake``; False if a newly scheduled cancel or
        replace interrupted the sleep first."""
        self._rescheduled.clear()
        sleeper = asyncio.ensure_future(self.exchange.clock.sleep_until(wake))
        interrupt = asyncio.ensure_future(self._rescheduled.wait())
        try:
            await asyncio.wait({sleeper, interrupt}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, interrupt):
                task.cancel()
        return sleeper.done() and not sleeper.cancelled()

    async def _watch_drop_streams(self) -> None:
        """Apply the ``drop_*`` switches set through the Python API (the HTTP ones act at
        once). A wall-clock poll: it watches a setting, it times nothing in the market."""
        while True:
            await self._apply_drop_faults()
            await asyncio.sleep(FAULT_WATCH_SECONDS)


async def _add_rate_headers(request: web.Request, response: web.StreamResponse) -> None:
    decision = request.get(RATE_DECISION)
    if decision is not None:
        response.headers.update(decision.headers())
