"""The jobs of each trading session, planned from the broker's calendar.

For every session: the corporate-actions check before the open; the pending intents go out
at the open + the strategies' execution delay; each drive's own jobs (``runtime.drives``:
Hourly Swing's evaluation as each clock-hour bar inside the session completes, Daily Trend's
signal at the close + 5 minutes); after the close the unsent intents expire and the next
sessions are planned. The daily signal owed at startup is planned whatever comes next, and
its bar is kept out of the warm-up (``warmup_bars``), so the signal job is the one that
evaluates it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta

from magellan_core.clock import Clock
from magellan_daemon.runtime.drives import (
    DRIVES,
    DriveContext,
    Fetch,
    SessionJob,
    StrategyDrive,
    daily_bar_completed,
    drive_of,
    owed_signal_session,
)
from magellan_daemon.runtime.scheduler import JobScheduler
from magellan_daemon.runtime.strategy_runner import StrategyRunner
from magellan_daemon.sessions import SessionBook
from magellan_daemon.timefmt import NEW_YORK
from strategies.api.descriptor import StrategySpec
from strategies.api.model import Bar
from strategies.api.session import Session

log = logging.getLogger(__name__)


def warmup_bars(
    bars: list[Bar],
    timeframe: str,
    sessions: SessionBook,
    now: datetime,
    length: timedelta,
) -> list[Bar]:
    """The bars a warm-up may feed at ``now``: completed ones only (never the bar still
    forming), and for daily bars none of the session the next signal owns or later."""
    if timeframe != "1Day":
        return [b for b in bars if b.t + length <= now]
    owed = owed_signal_session(sessions, now)
    return [
        b
        for b in bars
        if daily_bar_completed(b, sessions, now)
        and (owed is None or b.t.astimezone(NEW_YORK).date() < owed.date)
    ]


class SessionJobs:
    """Plans and runs the session jobs of the scheduled strategies."""

    def __init__(
        self,
        *,
        scheduler: JobScheduler,
        clock: Clock,
        runners: Mapping[str, StrategyRunner],
        specs: Mapping[str, StrategySpec],
        sessions: Callable[[], SessionBook],
        fetch: Fetch,
        after_close: Callable[[Session], Awaitable[None]],
        pre_open: Callable[[Session], Awaitable[None]] | None = None,
        pre_open_lead: timedelta = timedelta(minutes=30),
    ) -> None:
        self._scheduler = scheduler
        self._clock = clock
        self._runners = runners
        self._sessions = sessions
        self._on_close = after_close
        self._pre_open = pre_open
        self._pre_open_lead = pre_open_lead
        self._drives = {name: drive_of(spec.drive) for name, spec in specs.items()}
        self._context = DriveContext(fetch=fetch, sessions=sessions, clock=clock)

    def _driven(self, drive: StrategyDrive) -> list[StrategyRunner]:
        """The running strategies driven by ``drive`` (in config order)."""
        return [r for n, r in self._runners.items() if self._drives[n] is drive]

    def _drives_in_use(self) -> list[StrategyDrive]:
        """The drives of the running strategies, in the order their jobs are planned."""
        return [d for d in DRIVES.values() if self._driven(d)]

    def owed(self) -> Session | None:
        """``owed_signal_session`` now."""
        return owed_signal_session(self._sessions(), self._clock.now())

    def plan(self) -> None:
        """Plan the jobs owed now, the current (or next) session and the one after it."""
        now = self._clock.now()
        for drive in self._drives_in_use():
            for job in drive.owed_jobs(self._sessions(), now):
                self._plan_job(drive, job)
        session = self._sessions().current_or_next(now)
        for _ in range(2):
            if session is None:
                break
            self._plan_session(session)
            session = self._sessions().next_after(session)

    def _plan_job(self, drive: StrategyDrive, job: SessionJob) -> None:
        self._scheduler.at(job.key, job.label, job.when, self._run_job, drive, job)

    def _plan_session(self, session: Session) -> None:
        day = session.date
        now = self._clock.now()
        if self._pre_open is not None and now < session.open + self._pre_open_lead:
            # The session's corporate actions, before anything trades (corporate_watch).
            self._scheduler.at(
                f"pre-open-{day}",
                "corporate actions",
                max(now, session.open - self._pre_open_lead),
                self._pre_open,
                session,
            )
        pending_runners = self._at_open()
        if pending_runners:
            delay = max((r.execution_delay for r in pending_runners), default=timedelta(0))
            self._scheduler.at(
                f"open-{day}",
                "execute pending intents",
                max(now, session.open + delay),
                self._execute_pending,
            )
        for drive in self._drives_in_use():
            for job in drive.session_jobs(session, now):
                self._plan_job(drive, job)
        self._scheduler.at(
            f"close-{day}",
            "session close",
            max(now, session.close + timedelta(minutes=10)),
            self._after_close,
            session,
        )

    async def _run_job(self, drive: StrategyDrive, job: SessionJob) -> None:
        await drive.run(job, self._driven(drive), self._context)

    async def _execute_pending(self) -> None:
        total_sent = total_expired = 0
        for runner in self._at_open():
            sent, expired = await runner.execute_pending()
            total_sent, total_expired = total_sent + sent, total_expired + expired
            if sent or expired:
                log.info("%s: %d pending intents routed, %d expired", runner.name, sent, expired)
        if not (total_sent or total_expired):
            log.info("pending intents: none due")

    def _at_open(self) -> list[StrategyRunner]:
        """The running strategies that may leave intents for the next open."""
        return [r for n, r in self._runners.items() if self._drives[n].executes_at_open]

    async def _after_close(self, session: Session) -> None:
        await self._execute_pending()  # expires what could not be sent
        await self._on_close(session)
        self.plan()
