"""Waiting for the broker's word on an order without ever blocking the one who brings it.

The event sink calls ``notify`` (synchronously, never awaiting) after it applied an event to
the ledger; the router's lanes ``track`` the orders they care about (a cancel's ``canceled``,
a replace's ``replaced``) for the length of one request: from before the HTTP call, so news
that races the call is not missed, to its outcome. The stream consumer therefore never
waits on a lane, and nothing is remembered about an order nobody tracks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager


class Tracker:
    """The events applied to some orders since tracking began."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self._news = asyncio.Event()

    def saw(self, event: str) -> bool:
        """Whether ``event`` was applied to a tracked order since tracking began."""
        return event in self.events

    def _add(self, event: str) -> None:
        self.events.append(event)
        self._news.set()

    async def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` wall seconds for news not yet waited for; True if some."""
        try:
            await asyncio.wait_for(self._news.wait(), timeout)
        except TimeoutError:
            return False
        self._news.clear()
        return True


class OrderWatch:
    """Per client_order_id, the trackers to feed."""

    def __init__(self) -> None:
        self._trackers: dict[str, set[Tracker]] = {}

    def notify(self, client_order_id: str, event: str) -> None:
        """Feed ``event`` to everyone tracking the order."""
        for tracker in self._trackers.get(client_order_id, ()):
            tracker._add(event)

    @contextmanager
    def track(self, *client_order_ids: str) -> Iterator[Tracker]:
        """A tracker of these orders' events while the block runs."""
        tracker = Tracker()
        for cid in client_order_ids:
            self._trackers.setdefault(cid, set()).add(tracker)
        try:
            yield tracker
        finally:
            for cid in client_order_ids:
                trackers = self._trackers.get(cid)
                if trackers is not None:
                    trackers.discard(tracker)
                    if not trackers:
                        del self._trackers[cid]
