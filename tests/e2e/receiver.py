"""A loopback HTTP receiver for apprise's ``json://`` notifications (what a webhook service
would get), recording each with its wall arrival time."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web


class Receiver:
    """POSTs to ``/hook`` on 127.0.0.1, kept in order of arrival."""

    def __init__(self) -> None:
        self.received: list[tuple[float, dict[str, Any]]] = []  # (time.time(), JSON body)
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"json://127.0.0.1:{port}/hook"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _hook(self, request: web.Request) -> web.Response:
        self.received.append((time.time(), await request.json()))
        return web.Response(text="ok")

    def messages(self) -> list[str]:
        """Title and message of each notification, in order."""
        return [f"{b.get('title', '')}\n{b.get('message', '')}" for _, b in self.received]
