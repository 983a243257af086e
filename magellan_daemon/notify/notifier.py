"""The notification queue and its worker.

Trading code never waits on a notification: ``post`` puts a message on a queue and returns
(from any thread). One worker, supervised like the daemon's other loops, sends them through
apprise in a thread, at most ``max_per_minute`` a minute; what comes faster is grouped into
one digest. A send that fails is a WARNING (the worker goes on); the URLs, which carry
tokens, appear in no log line (apprise's own logger is silenced too).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)
SEND_TIMEOUT = 15.0  # wall seconds for one send (all URLs)
WINDOW = 60.0
MAX_QUEUED = 500  # beyond this the oldest messages are dropped (and counted)
TITLE = "Magellan"

Send = Callable[[str, str, str], bool]  # (title, body, level) -> all delivered


@dataclass(frozen=True, slots=True)
class Message:
    """One notification: what it is about (an event name of ``[notify] events``), a title,
    a body, and a level (info, success, warning, failure: apprise's notify types)."""

    event: str
    title: str
    body: str
    level: str = "info"


class Notifier:
    """A queue of messages and the worker that sends them."""

    def __init__(
        self, send: Send, *, max_per_minute: int, services: int, window: float = WINDOW
    ) -> None:
        self._send = send
        self._max = max_per_minute
        self._window = window  # seconds the rate is counted over
        self.services = services
        self._queue: deque[Message] = deque()
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._sent_at: deque[float] = deque()
        self._idle = True
        self._task: Any = None
        self.sent = 0
        self.failed = 0
        self.dropped = 0

    def start(self, spawn: Callable[[Coroutine[Any, Any, Any]], object]) -> None:
        """Start the worker with ``spawn`` (the daemon's supervisor: it never ends)."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._task = spawn(self.run())
        if self._queue:
            self._wake.set()

    def post(self, message: Message) -> None:
        """Queue ``message`` (never blocks, never raises; any thread)."""
        with self._lock:
            if len(self._queue) >= MAX_QUEUED:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(message)
        loop, wake = self._loop, self._wake
        if loop is None or wake is None or loop.is_closed():
            return
        try:
            if threading.get_ident() == getattr(loop, "_thread_id", None):
                wake.set()
            else:
                loop.call_soon_threadsafe(wake.set)
        except RuntimeError:  # the loop is closing: the message stays queued
            pass

    async def run(self) -> None:
        """Forever: wait for messages, respect the rate, send."""
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                self._idle = False
                held = await self._wait_for_budget()
                batch = self._take(everything=held)
                if not batch:
                    continue
                try:
                    await self._deliver(_digest(batch))
                except asyncio.CancelledError:
                    # Cancelled mid-send (the teardown stops this worker before its flush):
                    # the batch goes back to the queue, which the flush then sends itself.
                    with self._lock:
                        self._queue.extendleft(reversed(batch))
                    raise
            self._idle = True

    async def flush(self, timeout: float = 10.0) -> None:
        """Send what is queued, bounded by ``timeout`` (shutdown): through the worker while
        it runs, directly once the daemon's teardown has stopped it."""
        if self._wake is None:
            return
        deadline = time.monotonic() + timeout
        worker = self._task
        alive = isinstance(worker, asyncio.Task) and not worker.done()
        if alive:
            self._wake.set()
        while alive and (self._queue or not self._idle) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            alive = not worker.done()
        while self._queue and time.monotonic() < deadline:
            batch = self._take(everything=True)
            try:
                await asyncio.wait_for(self._deliver(_digest(batch)), deadline - time.monotonic())
            except TimeoutError:
                log.warning("notifications: %d not sent before the exit", len(batch))
                return

    def _take(self, *, everything: bool) -> list[Message]:
        """The next message; after the rate limit held us, all that queued meanwhile."""
        with self._lock:
            if not everything:
                return [self._queue.popleft()] if self._queue else []
            batch = list(self._queue)
            self._queue.clear()
        return batch

    async def _wait_for_budget(self) -> bool:
        """Wait until a send fits in the rate; True when that meant waiting."""
        waited = False
        while True:
            now = time.monotonic()
            while self._sent_at and now - self._sent_at[0] >= self._window:
                self._sent_at.popleft()
            if len(self._sent_at) < self._max:
                return waited
            waited = True
            await asyncio.sleep(self._window - (now - self._sent_at[0]) + 0.01)

    async def _deliver(self, message: Message) -> None:
        self._sent_at.append(time.monotonic())
        try:
            delivered = await asyncio.wait_for(
                asyncio.to_thread(self._send, message.title, message.body, message.level),
                SEND_TIMEOUT,
            )
        except Exception as exc:  # a notification must never take the daemon down
            delivered = False
            log.warning("notification (%s) not sent: %s", message.event, type(exc).__name__)
        if delivered:
            self.sent += 1
            log.debug("notification (%s) sent", message.event)
            return
        self.failed += 1
        log.warning(
            "notification (%s) not delivered to every service (%d configured): %s",
            message.event,
            self.services,
            message.title,
        )


def _digest(batch: list[Message]) -> Message:
    """One message as is; several (the rate limit held them) as one digest."""
    if len(batch) == 1:
        return batch[0]
    worst = max(batch, key=lambda m: _LEVELS.get(m.level, 0)).level
    body = "\n".join(f"- {m.title}: {m.body}" for m in batch)
    return Message("digest", f"{TITLE}: {len(batch)} events", body, worst)


_LEVELS = {"info": 0, "success": 0, "warning": 1, "failure": 2}
