"""Every background task is named, owned and watched.

``spawn`` creates a task that is strongly referenced (asyncio keeps only weak references) and
logs its own crash with its name instead of disappearing silently. ``Supervisor`` owns the
tasks the daemon cannot trade without (the trade-update consumers, the strategy workers, the
trade-log writer, the recovery loops): if one of them ends for any reason while the daemon is
not stopping, ``on_death`` is called (the daemon stops and exits non-zero, so systemd
restarts it and the startup reconciliation repairs the state), and health reports it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)
_LIVE: set[asyncio.Task[Any]] = set()


def spawn(coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
    """Start ``coro`` as a named task that logs its own crash."""
    task = asyncio.create_task(coro, name=name)
    _LIVE.add(task)
    task.add_done_callback(_reap)
    return task


def _reap(task: asyncio.Task[Any]) -> None:
    _LIVE.discard(task)
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.error("task %s crashed", task.get_name(), exc_info=exc)


class Supervisor:
    """The daemon's critical tasks: any of them ending is fatal."""

    def __init__(self, on_death: Callable[[str, BaseException | None], None]) -> None:
        self._on_death = on_death
        self._tasks: dict[str, asyncio.Task[Any]] = {}
        self.stopping = False

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        """Start a critical task."""
        task = spawn(coro, name=name)
        self._tasks[name] = task
        task.add_done_callback(self._ended)
        return task

    def _ended(self, task: asyncio.Task[Any]) -> None:
        if self.stopping or task.cancelled():
            return
        self._on_death(task.get_name(), task.exception())

    def dead(self) -> list[str]:
        """Names of critical tasks that are no longer running."""
        return sorted(name for name, task in self._tasks.items() if task.done())

    async def cancel_all(self, timeout: float = 5.0) -> None:
        """Stop every critical task (shutdown)."""
        self.stopping = True
        tasks = [t for t in self._tasks.values() if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)
