"""The status page's HTTP server: GET only, on the daemon's loop (aiohttp).

``/`` the page, ``/static/*`` its script and style (from this package: the page works
offline), ``/api/status`` and ``/api/trades?date=YYYY-MM-DD`` its JSON. No route changes
anything: halt, resume and flatten stay in the CLI. Off loopback every request must carry
``Authorization: Bearer <token>`` (the token comes from the environment, never logged).
"""

from __future__ import annotations

import hmac
import logging
from datetime import date
from pathlib import Path

import orjson
from aiohttp import web

from magellan_daemon.ledger.store import LEDGER_FILE
from magellan_daemon.observability.logs import register_secret
from magellan_daemon.tasks import spawn
from magellan_daemon.web.settings import WebConfig, web_token
from magellan_daemon.web.view import DaemonStatus, StatusView

log = logging.getLogger(__name__)
STATIC = Path(__file__).with_name("static")
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Everything from this origin: no CDN, nothing from the internet.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
}


class StatusServer:
    """Serves one ``StatusView``."""

    def __init__(self, view: StatusView, config: WebConfig, token: str | None) -> None:
        self._view = view
        self._config = config
        self._token = token
        self._runner: web.AppRunner | None = None
        self._sampler = None
        self.url = ""

    async def start(self) -> str:
        """Bind (port 0 = a free port), serve, and return the page's URL."""
        app = web.Application(middlewares=[self._guard])
        app.router.add_get("/", self._page)
        app.router.add_get("/api/status", self._status)
        app.router.add_get("/api/trades", self._trades)
        app.router.add_static("/static/", STATIC, follow_symlinks=False)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._config.bind, self._config.port)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{port}/"
        self._sampler = spawn(self._view.sample_forever(), name="status-page-sampler")
        return self.url

    async def stop(self) -> None:
        """Stop serving (and sampling)."""
        if self._sampler is not None:
            self._sampler.cancel()
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _guard(self, request: web.Request, handler):  # type: ignore[no-untyped-def]
        if request.method not in ("GET", "HEAD"):
            raise web.HTTPMethodNotAllowed(request.method, ["GET", "HEAD"])
        if self._token is not None:
            sent = request.headers.get("Authorization", "")
            expected = f"Bearer {self._token}"
            if not hmac.compare_digest(sent.encode(), expected.encode()):
                return web.Response(
                    status=401,
                    text="a bearer token is required\n",
                    headers={"WWW-Authenticate": "Bearer"},
                )
        response = await handler(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    async def _page(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html")

    async def _status(self, request: web.Request) -> web.Response:
        return _json(await self._view.status())

    async def _trades(self, request: web.Request) -> web.Response:
        text = request.query.get("date", "")
        try:
            day = date.fromisoformat(text)
        except ValueError:
            return _json({"error": f"date must be YYYY-MM-DD (got {text[:20]!r})"}, status=400)
        return _json(await self._view.trades(day))


def _json(body: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


async def start_status_page(daemon: DaemonStatus) -> StatusServer | None:
    """The page ``[web]`` asks for, serving (None without a ``[web]`` table, or when its
    port cannot be had: an ERROR, and the daemon trades on)."""
    config = daemon.config.web
    if config is None:
        return None
    token = web_token(config, daemon.config.path)
    if token is not None:
        register_secret(token)
    server = StatusServer(StatusView(daemon, daemon.state_dir / LEDGER_FILE), config, token)
    try:
        await server.start()
    except OSError as exc:  # the page is for people; trading goes on without it
        log.error(
            "web status page NOT served: cannot listen on %s:%d (%s); trading goes on",
            config.bind,
            config.port,
            exc.strerror or exc,
        )
        await server.stop()
        return None
    return server
