"""Jobs at business times, on APScheduler, driven by the process's one clock.

APScheduler (``AsyncIOScheduler``, America/New_York) runs every job. Each job is planned
for a *virtual* instant (16:05 or close + 5 min, the open + delay, each hourly bar's end),
taken from the broker's calendar, and handed to APScheduler through ``ClockTrigger``, which
maps that instant to wall time with ``Clock.to_wall``. With the wall clock the map is the
identity; with the simulator's virtual clock at 1000x a 16:05 job fires 1/1000 of the wait
later; when the virtual clock jumps, ``_on_clock_change`` moves every pending job to its new
wall time. So the same jobs run at 1x, 60x or 1000x.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger

from magellan_core.clock import Clock, VirtualClock
from magellan_daemon.tasks import spawn
from magellan_daemon.timefmt import NEW_YORK

log = logging.getLogger(__name__)
# A frozen virtual clock never reaches a future instant by itself; park such jobs far out
# and move them when the clock is stepped (the listener reschedules).
_PARKED = timedelta(days=3650)


class ClockTrigger(BaseTrigger):
    """Fires once, when ``clock`` reaches the virtual instant ``when``."""

    def __init__(self, clock: Clock, when: datetime) -> None:
        self.clock = clock
        self.when = when

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        """The wall time of ``when`` (None once fired)."""
        if previous_fire_time is not None:
            return None
        wall = self.clock.to_wall(self.when)
        return wall if wall is not None else now + _PARKED

    def __str__(self) -> str:
        return f"clock[{self.when.astimezone(NEW_YORK):%Y-%m-%d %H:%M:%S %Z}]"


@dataclass(frozen=True, slots=True, kw_only=True)
class PlannedJob:
    """A job waiting for its virtual time (what ``status`` shows)."""

    id: str
    name: str
    when: datetime


class JobScheduler:
    """Runs coroutine jobs at virtual instants; one job per id (re-planning is idempotent)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._aps = AsyncIOScheduler(timezone=NEW_YORK)
        self._planned: dict[str, PlannedJob] = {}
        self._running: set[asyncio.Task[Any]] = set()
        self._done: set[str] = set()  # ids that ran: planning again never re-runs them
        if isinstance(clock, VirtualClock):
            clock.add_listener(self._on_clock_change)

    def start(self) -> None:
        """Start running jobs (call from the event loop)."""
        self._aps.start()

    async def shutdown(self, timeout: float = 15.0) -> None:
        """Stop: no new job starts; jobs already running get ``timeout`` seconds to finish."""
        if isinstance(self._clock, VirtualClock):
            self._clock.remove_listener(self._on_clock_change)
        if self._aps.running:
            self._aps.shutdown(wait=False)
        self._planned.clear()
        if self._running:
            _, late = await asyncio.wait(set(self._running), timeout=timeout)
            for task in late:
                log.warning("job task %s still running at shutdown: cancelled", task.get_name())
                task.cancel()

    def at(
        self,
        job_id: str,
        name: str,
        when: datetime,
        func: Callable[..., Awaitable[Any]],
        *args: Any,
    ) -> None:
        """Run ``await func(*args)`` when the clock reaches ``when``, once per ``job_id``."""
        if job_id in self._planned or job_id in self._done:
            return
        self._planned[job_id] = PlannedJob(id=job_id, name=name, when=when)

        async def run() -> None:
            log.info(
                "job %s (planned %s) starts at %s",
                name,
                when.astimezone(NEW_YORK).strftime("%Y-%m-%d %H:%M:%S ET"),
                self._clock.now().astimezone(NEW_YORK).strftime("%Y-%m-%d %H:%M:%S ET"),
            )
            try:
                await func(*args)
            except Exception:
                log.exception("job %s (%s) failed", name, job_id)

        async def fire() -> None:
            # APScheduler only fires the job; the job runs in a task of ours. APScheduler
            # cancels the jobs it runs when it shuts down, so a job at SIGTERM (the 09:31
            # sends, say) would be cut off at once; ours get ``shutdown``'s grace instead.
            self._planned.pop(job_id, None)
            self._done.add(job_id)
            task = spawn(run(), name=f"job-{job_id}")
            self._running.add(task)
            task.add_done_callback(self._running.discard)

        self._aps.add_job(
            fire,
            trigger=ClockTrigger(self._clock, when),
            id=job_id,
            name=name,
            misfire_grace_time=None,  # late is better than never (a lagging loop)
            coalesce=True,
        )

    def planned(self) -> list[PlannedJob]:
        """Jobs not yet run, soonest first."""
        return sorted(self._planned.values(), key=lambda j: j.when)

    def _on_clock_change(self) -> None:
        if not self._aps.running:
            return
        now_wall = self._clock.to_wall(self._clock.now())
        assert now_wall is not None  # the present always has a wall time
        for job in self._planned.values():
            wall = self._clock.to_wall(job.when)
            try:
                self._aps.modify_job(job.id, next_run_time=wall or now_wall + _PARKED)
            except Exception:  # the job started running between the two lines
                log.debug("job %s not rescheduled (already running)", job.id)
