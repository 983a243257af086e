"""``spawn``: the one way the daemon creates a background task.

Every task is named and strongly referenced (asyncio keeps only weak references), and a task
that dies with an exception is logged with its name instead of disappearing silently.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
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
