"""Injected REST faults (latency, HTTP errors before or after the core's work) and the
``drop_*`` switches that close websockets, as the ``Faults`` settings ask."""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

from aiohttp import web

from magellan_sim.exchange.faults import Faults
from magellan_sim.server.middleware import Handler, is_rest, status_error
from magellan_sim.server.streams import StreamHub

log = logging.getLogger(__name__)

FAULT_WATCH_SECONDS = 0.05


class FaultInjector:
    """Applies the REST and websocket faults of one ``Faults`` to the server's traffic."""

    def __init__(self, faults: Faults, hub: StreamHub) -> None:
        self._faults = faults
        self._hub = hub
        self._rng = random.Random(faults.seed)
        self._seed = faults.seed

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> Any:
        """Injected latency and HTTP errors on REST requests, decided before the core runs."""
        if not is_rest(request):
            return await handler(request)
        faults = self._faults
        await self.apply_drop_faults()
        if faults.latency_ms > 0:
            await asyncio.sleep(faults.latency_ms / 1000)
        if faults.seed != self._seed:
            self.reseed()
        if faults.http_error_rate > 0 and self._rng.random() < faults.http_error_rate:
            status = faults.http_status
            return status_error(status, f"injected fault: http {status}")
        response = await handler(request)
        rate = faults.http_error_after_rate
        if rate > 0 and self._rng.random() < rate:
            # the core has done the work (an order may now exist): only the answer is lost
            status = faults.http_status
            return status_error(status, f"injected fault: http {status} after processing")
        return response

    def reseed(self) -> None:
        """Restart the fault sequences from the settings' seed."""
        self._seed = self._faults.seed
        self._rng = random.Random(self._seed)
        self._hub.faults.reseed()

    async def drop_streams(self) -> int:
        """Close every open websocket once (the ``drop_streams`` fault); returns how many."""
        self._faults.drop_streams = False
        dropped = await self._hub.close_all()
        log.info("fault injection dropped %d websocket(s)", dropped)
        return dropped

    async def apply_drop_faults(self) -> None:
        """Act on the ``drop_*`` switches that are set, once each."""
        faults = self._faults
        if faults.drop_streams:
            await self.drop_streams()
        for name, kind in (("drop_trade_streams", "trade"), ("drop_data_streams", "data")):
            if getattr(faults, name):
                setattr(faults, name, False)
                dropped = await self._hub.close_all(trade=kind == "trade", data=kind == "data")
                log.info("fault injection dropped %d %s websocket(s)", dropped, kind)

    async def watch_drop_streams(self) -> None:
        """Apply the ``drop_*`` switches set through the Python API (the HTTP ones act at
        once). A wall-clock poll: it watches a setting, it times nothing in the market."""
        while True:
            await self.apply_drop_faults()
            await asyncio.sleep(FAULT_WATCH_SECONDS)
