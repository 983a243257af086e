"""The job scheduler at shutdown: a job already running gets its time to finish, and one that
overstays is cancelled with a warning; neither is an ERROR (a stop is not a failure)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest

from magellan_core.clock import VirtualClock
from magellan_daemon.runtime.scheduler import JobScheduler

T0 = datetime(2024, 11, 18, 14, 31, tzinfo=UTC)


async def _started(
    scheduler: JobScheduler, clock: VirtualClock, job: Callable[[], Awaitable[None]]
) -> None:
    began = asyncio.Event()

    async def run() -> None:
        began.set()
        await job()

    scheduler.start()
    scheduler.at("open-2024-11-18", "execute pending intents", clock.now(), run)
    await asyncio.wait_for(began.wait(), 10)


async def test_a_running_job_finishes_during_shutdown(caplog: pytest.LogCaptureFixture) -> None:
    clock = VirtualClock(T0)
    scheduler = JobScheduler(clock)
    release, finished = asyncio.Event(), []

    async def job() -> None:
        await release.wait()
        finished.append(True)

    await _started(scheduler, clock, job)
    with caplog.at_level(logging.DEBUG):
        stopping = asyncio.create_task(scheduler.shutdown(timeout=10))
        await asyncio.sleep(0)  # shutdown has begun: no new job, this one still runs
        release.set()
        await stopping
    assert finished == [True]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_job_that_overstays_is_cancelled_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = VirtualClock(T0)
    scheduler = JobScheduler(clock)

    async def job() -> None:
        await asyncio.Event().wait()  # never finishes

    await _started(scheduler, clock, job)
    with caplog.at_level(logging.DEBUG):
        await scheduler.shutdown(timeout=0.05)
        await asyncio.sleep(0)  # let the cancellation land
    assert "still running at shutdown: cancelled" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
