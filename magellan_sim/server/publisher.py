"""The minute publisher: at each virtual minute boundary it advances the exchange and
streams that minute's bars; between boundaries it wakes when a cancel or replace in flight
comes due, so its trade update leaves on time even when no request arrives.

With ``prepack`` (``magellan sim --prepack-bars``, for benchmarks) the next minute's frames
are packed halfway through the minute, and at the boundary only queued: a
client's burst then measures the client, not this process packing 10,000 messages on the
same cores. The bars of a minute are fixed before it ends (the market's series and the wire
shape are pure), and a connection whose subscription changed in between gets its frames
packed afresh at the boundary, so what is sent is what would have been sent."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from magellan_core import timeframes
from magellan_sim.exchange.exchange import Exchange
from magellan_sim.market.market import SimBar
from magellan_sim.server.streams import PackedBars, StreamHub

log = logging.getLogger(__name__)

MINUTE = timeframes.BAR_LENGTH[timeframes.MINUTE]  # the publisher's step


def floor_minute(t: datetime) -> datetime:
    """``t`` at the start of its minute."""
    return t.replace(second=0, microsecond=0)


class MinutePublisher:
    """Drives the exchange on the virtual clock and publishes the bars as minutes end."""

    def __init__(self, exchange: Exchange, hub: StreamHub, *, prepack: bool = False) -> None:
        self._exchange = exchange
        self._hub = hub
        self._prepack = prepack
        self._packed: tuple[datetime, list[SimBar], PackedBars] | None = None
        self._processed = floor_minute(exchange.clock.now())
        self._progress = asyncio.Condition()
        self._rescheduled = asyncio.Event()
        exchange.add_schedule_listener(self._rescheduled.set)

    async def wait_processed(self, t: datetime | None = None) -> None:
        """Return once the exchange is advanced and the bars are sent for every minute
        boundary up to ``t`` (default: the clock's current time), and every cancel or
        replace due by ``t`` has completed."""
        t = t or self._exchange.clock.now()
        target = floor_minute(t)

        def done() -> bool:
            due = self._exchange.next_due()
            return self._processed >= target and (due is None or due > t)

        async with self._progress:
            await self._progress.wait_for(done)

    def start(self) -> asyncio.Task[None]:
        """Publish minutes from the clock's current minute on, in a task (cancel it to stop)."""
        self._processed = floor_minute(self._exchange.clock.now())
        return asyncio.create_task(self._run(), name="sim-minute-publisher")

    async def _run(self) -> None:
        clock = self._exchange.clock
        failed: datetime | None = None  # a due instant whose processing failed: not again
        while True:
            boundary = self._processed + MINUTE
            due = self._exchange.next_due()
            wake = boundary if due is None or due == failed else min(boundary, due)
            if (
                self._prepack
                and self._hub.wants_bars()
                and (self._packed is None or self._packed[0] != boundary)
            ):
                # halfway through the minute: the client's last burst is done with by then
                # (packing right after it would compete with it for the same cores)
                half = boundary - MINUTE / 2
                if wake > half and clock.now() < half:
                    if await self._sleep_until(half):
                        self._pack_ahead(boundary)
                    continue
                self._pack_ahead(boundary)
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
                boundary = max(boundary, floor_minute(clock.now()))
            if self._advance("the minute publisher at", boundary) and self._hub.wants_bars():
                try:
                    packed, self._packed = self._packed, None
                    if packed is not None and packed[0] == boundary:
                        self._hub.publish_packed(packed[1], packed[2])
                    else:
                        bars = self._exchange.market.minute_bars_ending_at(boundary)
                        self._hub.publish_bars(bars)
                except Exception:
                    log.exception("minute publisher failed at %s", boundary.isoformat())
            async with self._progress:
                self._processed = boundary
                self._progress.notify_all()
            # a jump of many minutes must not starve the socket writers
            await asyncio.sleep(0)

    def _pack_ahead(self, boundary: datetime) -> None:
        try:
            bars = self._exchange.market.minute_bars_ending_at(boundary)
            self._packed = (boundary, bars, self._hub.pack_bars(bars))
        except Exception:
            log.exception("minute publisher could not pack ahead for %s", boundary.isoformat())
            self._packed = None

    def _advance(self, what: str, t: datetime) -> bool:
        try:
            self._exchange.advance()
        except Exception:
            log.exception("%s %s failed", what, t.isoformat())
            return False
        return True

    async def _sleep_until(self, wake: datetime) -> bool:
        """Sleep on the virtual clock until ``wake``; False if a newly scheduled cancel or
        replace interrupted the sleep first."""
        self._rescheduled.clear()
        sleeper = asyncio.ensure_future(self._exchange.clock.sleep_until(wake))
        interrupt = asyncio.ensure_future(self._rescheduled.wait())
        try:
            await asyncio.wait({sleeper, interrupt}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, interrupt):
                task.cancel()
        return sleeper.done() and not sleeper.cancelled()
