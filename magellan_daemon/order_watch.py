"""Waiting for the broker's word on an order without ever blocking the one who brings it.

The event sink calls ``notify`` (synchronously, never awaiting) after it applied an event to
the ledger; the router's lanes ``wait`` for the next news on the orders they care about
(a cancel's ``canceled``, a replace's ``replaced``). The stream consumer therefore never
waits on a lane, and a lane never holds anything the consumer needs.
"""

from __future__ import annotations

import asyncio
from collections import deque

HISTORY = 32  # events remembered per order: enough to see a refusal that raced a wait


class OrderWatch:
    """Per client_order_id: the recent event names, and the waiters to wake."""

    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._history: dict[str, deque[str]] = {}
        self._counts: dict[str, int] = {}

    def notify(self, client_order_id: str, event: str) -> None:
        """Record ``event`` for the order and wake everyone waiting on it."""
        self._history.setdefault(client_order_id, deque(maxlen=HISTORY)).append(event)
        self._counts[client_order_id] = self._counts.get(client_order_id, 0) + 1
        for waiter in self._waiters.get(client_order_id, ()):
            waiter.set()

    def mark(self, client_order_id: str) -> int:
        """A position in the order's event sequence, for ``since``."""
        return self._counts.get(client_order_id, 0)

    def since(self, client_order_id: str, mark: int) -> list[str]:
        """Event names applied to the order after ``mark`` (the most recent ``HISTORY``)."""
        count = self._counts.get(client_order_id, 0) - mark
        if count <= 0:
            return []
        history = self._history.get(client_order_id, deque())
        return list(history)[-count:]

    async def wait(self, client_order_ids: list[str], timeout: float) -> bool:
        """Wait up to ``timeout`` wall seconds for news on any of the orders; True if some
        came."""
        waiter = asyncio.Event()
        for cid in client_order_ids:
            self._waiters.setdefault(cid, set()).add(waiter)
        try:
            await asyncio.wait_for(waiter.wait(), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            for cid in client_order_ids:
                waiters = self._waiters.get(cid)
                if waiters is not None:
                    waiters.discard(waiter)
                    if not waiters:
                        del self._waiters[cid]

    def forget(self, client_order_id: str) -> None:
        """Drop the history of an order no one will wait on again."""
        self._history.pop(client_order_id, None)
        self._counts.pop(client_order_id, None)
