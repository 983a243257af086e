"""Teardown that always finishes: ordered steps, each bounded, none able to stop the next.

The steps run in the order given. One that fails is logged with its traceback, one that
hangs is given up after its timeout; either way the next step runs. The steps sit on an
``AsyncExitStack``, so even a cancellation inside one step still runs the ones after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Step:
    """One teardown step: ``run(*args)`` given at most ``timeout`` seconds."""

    name: str
    run: Callable[..., Awaitable[Any]]
    timeout: float
    args: tuple[Any, ...] = ()


async def tear_down(steps: Sequence[Step]) -> None:
    """Run every step in order (see the module docstring); never raises for a step."""
    async with contextlib.AsyncExitStack() as stack:
        # Pushed in reverse: the last pushed runs first.
        for step in reversed(steps):
            stack.push_async_callback(_bounded, step)


async def _bounded(step: Step) -> None:
    try:
        await asyncio.wait_for(step.run(*step.args), step.timeout)
    except TimeoutError:
        log.warning("shutdown: %s did not finish in %g s; going on", step.name, step.timeout)
    except Exception:
        log.exception("shutdown: %s failed; going on", step.name)
