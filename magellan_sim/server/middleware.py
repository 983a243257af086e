"""The request pipeline's middleware, outermost first: error shaping (a handler's
unexpected exception is a logged 500, never a dead server), then, after the injected
faults (``injection``), authentication, the armed hooks and the per-key rate limit."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from magellan_sim.errors import SimError
from magellan_sim.exchange.hooks import Hooks
from magellan_sim.exchange.order_desk import OrderDesk
from magellan_sim.server.auth import Credentials
from magellan_sim.server.ratelimit import RateDecision, RateLimiter
from magellan_sim.server.rest import ACCOUNT_KEY, json_response

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
STREAM_PATHS = frozenset({"/stream", "/stream/", "/v2/iex", "/v2/sip"})
RATE_DECISION = web.RequestKey("sim_rate_decision", RateDecision)


def is_rest(request: web.Request) -> bool:
    """A REST request (trading or market data), not a websocket nor a ``/sim`` control."""
    path = request.path
    return (path.startswith("/v2/") and path not in STREAM_PATHS) or path.startswith("/v1/")


def _is_data_api(path: str) -> bool:
    return path.startswith(("/v2/stocks/", "/v1/corporate-actions"))


def status_error(status: int, message: str) -> web.Response:
    """An Alpaca-shaped error answer for an HTTP status."""
    return json_response({"code": status * 100_000, "message": message}, status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Alpaca-shaped JSON for every error; an unexpected exception is a logged 500."""
    try:
        return await handler(request)
    except SimError as exc:
        return json_response(exc.body(), exc.status)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return status_error(exc.status, (exc.reason or "error").lower())
    except (asyncio.CancelledError, ConnectionError):
        raise
    except Exception:
        log.exception("unexpected error serving %s %s", request.method, request.path)
        return json_response({"code": 50010000, "message": "internal server error"}, 500)


async def add_rate_headers(request: web.Request, response: web.StreamResponse) -> None:
    """The rate limit's headers on every REST answer (``on_response_prepare``)."""
    decision = request.get(RATE_DECISION)
    if decision is not None:
        response.headers.update(decision.headers())


class RequestGate:
    """Who is asking (the account of the credentials), the hooks a request hits, and the
    rate limit: the middleware between the faults and the routes."""

    def __init__(
        self, credentials: Credentials, limiter: RateLimiter, hooks: Hooks, orders: OrderDesk
    ) -> None:
        self._credentials = credentials
        self._limiter = limiter
        self._hooks = hooks
        self._orders = orders  # to name the client_order_id of an order a request names

    @web.middleware
    async def auth(self, request: web.Request, handler: Handler) -> Any:
        """Identify the account from the credentials; 401 when they are refused."""
        if not is_rest(request):
            return await handler(request)
        account = self._credentials.account_for_headers(request.headers)
        if account is None:
            return json_response({"code": 40110000, "message": "request is not authorized"}, 401)
        request[ACCOUNT_KEY] = account
        return await handler(request)

    @web.middleware
    async def hooks(self, request: web.Request, handler: Handler) -> Any:
        """The armed hooks (``exchange.hooks``): hit before the core handles the request
        or once its answer is ready, each maybe holding the request there for a while."""
        if not is_rest(request) or not self._hooks.wants_requests():
            return await handler(request)
        cid = await self._client_order_id(request)
        hook = self._hooks.match_request(request.method, request.path, cid, "before")
        if hook is not None:
            await self._hooks.hold(hook)
        response = await handler(request)
        hook = self._hooks.match_request(request.method, request.path, cid, "after")
        if hook is not None:
            await self._hooks.hold(hook)
        return response

    @web.middleware
    async def rate_limit(self, request: web.Request, handler: Handler) -> Any:
        """Per key and API (trading vs market data), N requests per rolling wall minute."""
        if not is_rest(request):
            return await handler(request)
        api = "data" if _is_data_api(request.path) else "trading"
        decision = self._limiter.check(f"{api}:{request[ACCOUNT_KEY]}")
        request[RATE_DECISION] = decision
        if not decision.allowed:
            return json_response({"code": 42910000, "message": "rate limit exceeded"}, 429)
        return await handler(request)

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
            order = self._orders.get_order(request[ACCOUNT_KEY], order_id)
        except SimError:
            return None
        cid = order.get("client_order_id")
        return cid if isinstance(cid, str) else None
