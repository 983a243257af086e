"""Lanes: one queue per key, worked in order by one task; the keys run side by side.

The router keys its lanes by (account, symbol), so the intents of one symbol run in the order
they were emitted while other symbols run alongside, and one item's failure never stops its
lane. This module knows nothing of what an item means. Its ``LaneHandler`` runs an item, says
whether the next item in the queue makes it moot, and reports it; the lanes guarantee that an
item taken from its queue ends in exactly one ``finished`` call and one result on its future,
whether it ran, failed or was superseded. Only a cancelled lane (shutdown) ends items without
a ``finished`` call: the queued ones' futures complete with None, the one being run is
cancelled with its task.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from magellan_daemon.tasks import spawn

T = TypeVar("T")
Key = tuple[str, str]


@dataclass
class LaneStats:
    """Counters of the lanes, for the health line and metrics."""

    failed: int = 0  # items whose run raised, since start
    in_flight: int = 0  # items being run now


@dataclass(eq=False)
class Ticket(Generic[T]):
    """An item on its lane, with the future its result goes to and its one report."""

    item: T
    done: asyncio.Future[object]
    reported: bool = False  # the item's owner was told how it ended

    def claim_report(self) -> bool:
        """True the first time: the caller makes the item's one report; False after."""
        if self.reported:
            return False
        self.reported = True
        return True


class LaneHandler(Protocol[T]):
    """What the lanes ask of their owner about an item."""

    def supersedes(self, later: T, earlier: T) -> bool:
        """Whether ``later``, next in the queue, makes ``earlier`` moot (then it is skipped)."""
        ...

    async def run(self, ticket: Ticket[T]) -> object:
        """Execute the item; the return value is its future's result."""
        ...

    def failed(self, ticket: Ticket[T], exc: Exception) -> None:
        """The item's run raised ``exc`` (its future's result is None)."""
        ...

    def skipped(self, ticket: Ticket[T]) -> None:
        """The item was superseded and not run."""
        ...

    def finished(self, ticket: Ticket[T]) -> None:
        """The item ended (ran, failed or skipped): called once, before its future completes."""
        ...


@dataclass(eq=False)
class _Lane(Generic[T]):
    queue: deque[Ticket[T]] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None
    current: Ticket[T] | None = None  # being run


class Lanes(Generic[T]):
    """One lane per key; a lane's task lives while it has items."""

    def __init__(self, handler: LaneHandler[T], stats: LaneStats) -> None:
        self._handler = handler
        self._lanes: dict[Key, _Lane[T]] = {}
        self.stats = stats

    def add(self, key: Key, item: T) -> asyncio.Future[object]:
        """Queue ``item`` on the key's lane (never waits); returns the future of its result."""
        lane = self._lanes.setdefault(key, _Lane())
        ticket = Ticket(item, asyncio.get_running_loop().create_future())
        lane.queue.append(ticket)
        if lane.task is None:
            lane.task = spawn(self._run(key, lane), name=f"lane-{key[0]}-{key[1]}")
        return ticket.done

    def items(self, key: Key) -> Iterator[T]:
        """The key's items being run or waiting, in order."""
        lane = self._lanes.get(key)
        if lane is None:
            return
        for ticket in (lane.current, *lane.queue):
            if ticket is not None:
                yield ticket.item

    def busy(self) -> bool:
        """True while any lane has work."""
        return any(lane.queue or lane.task for lane in self._lanes.values())

    async def drain(self, timeout: float) -> bool:
        """Wait (wall ``timeout``) until every lane is idle; False if work was left."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while self.busy():
            if loop.time() >= end:
                return False
            await asyncio.sleep(0.02)
        return True

    async def cancel(self) -> None:
        """Stop every lane now: what is left is not run."""
        tasks = [lane.task for lane in self._lanes.values() if lane.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, key: Key, lane: _Lane[T]) -> None:
        try:
            while lane.queue:
                ticket = lane.queue.popleft()
                if lane.queue and self._handler.supersedes(lane.queue[0].item, ticket.item):
                    self._handler.skipped(ticket)
                    result = None
                else:
                    result = await self._step(lane, ticket)
                self._handler.finished(ticket)
                if not ticket.done.done():
                    ticket.done.set_result(result)
        finally:
            lane.task = None
            for ticket in lane.queue:  # only if this task itself was cancelled (shutdown)
                if not ticket.done.done():
                    ticket.done.set_result(None)
            if not lane.queue:
                self._lanes.pop(key, None)

    async def _step(self, lane: _Lane[T], ticket: Ticket[T]) -> object:
        self.stats.in_flight += 1
        lane.current = ticket
        try:
            return await self._handler.run(ticket)
        except Exception as exc:  # one item's failure never stops the lane
            self.stats.failed += 1
            self._handler.failed(ticket, exc)
            return None
        finally:
            self.stats.in_flight -= 1
            lane.current = None
