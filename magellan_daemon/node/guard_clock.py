"""When the position guard looks: each minute, soon after order news, and at the opening
auction for what outlived the close."""

from __future__ import annotations

import asyncio
import logging

from magellan_core.clock import Clock
from magellan_daemon.execution.position_guard import PositionGuard
from magellan_daemon.node.market_data import MINUTE_CLOCK_OFFSET
from magellan_daemon.runtime.scheduler import JobScheduler

log = logging.getLogger(__name__)


class GuardClock:
    """The position guard's timing (the guard itself decides)."""

    def __init__(
        self,
        *,
        guard: PositionGuard,
        scheduler: JobScheduler,
        clock: Clock,
        ready: asyncio.Event,
    ) -> None:
        self._guard = guard
        self._scheduler = scheduler
        self._clock = clock
        self._ready = ready
        self._posted = False

    async def run(self) -> None:
        """The position guard each minute (after the minute's bars and the strategies' own
        clock ticks), and the opening-auction job for what outlived the close."""
        while True:
            self._guard.check()
            now = self._clock.now()
            due = self._guard.auction_due(now)
            if due is not None and due > now:
                # The clock may fast-forward over a closed market: a job is what it stops for.
                self._scheduler.at(
                    f"guard-auction-{due:%Y%m%d}", "opening-auction exits", due, self._job
                )
            await self._clock.sleep_until(
                now.replace(second=0, microsecond=0) + MINUTE_CLOCK_OFFSET
            )

    async def _job(self) -> None:
        self._guard.check()

    def soon(self) -> None:
        """After order news: the guard looks once the news has been applied (never inside
        the stream consumer's call, which must not wait on anything)."""
        if self._posted or not self._ready.is_set():
            return
        self._posted = True
        asyncio.get_running_loop().call_soon(self._now)

    def _now(self) -> None:
        self._posted = False
        try:
            self._guard.check()
        except Exception:  # the minute loop (supervised) runs the same check and dies loudly
            log.exception("position guard check after order news failed")
