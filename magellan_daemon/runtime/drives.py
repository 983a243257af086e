"""How a strategy is driven: one object per ``Drive`` a descriptor names, the one place that
knows what each drive means.

- ``MinuteStream`` (``minute_stream``): every 1Min bar from the market-data websocket (one
  per account), plus a minute clock for the time-driven exits; orders go out at once.
- ``HourlyBars`` (``hourly_bars``): each completed clock-hour bar inside the session, fetched
  over REST just after it completes; the bar ending at the close executes at the next open.
- ``DailySignal`` (``daily_signal``): the session's daily bar at the close + 5 minutes (16:05,
  or 13:05 on an early close); orders at the next open.

Each answers what the places that drive strategies ask: the jobs it plans for a session and
what such a job does (``runtime.jobs``), whether it needs the bar stream and the minute clock
(``node.daemon``, ``config.loading``), whether it leaves intents for the next open, and at
which instant the backtest hands it a bar (``backtest.run``). ``drive_of`` looks one up by
the descriptor's name; a new drive is one class here and its name in
``strategies.api.descriptor.Drive``.

Which session's daily bar the next daily signal owns is decided once, from the calendar
(``owed_signal_session``): the last closed session whose next open has not come yet, from its
close onward. Its signal is always planned, at ``max(now, close + 5 min)``, whenever the
daemon starts (at 16:02, at 16:06, or at 03:00 after a night down).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, ClassVar, Protocol

from magellan_core.clock import Clock
from magellan_daemon.runtime.strategy_runner import TIMEFRAME_LENGTH, StrategyRunner
from magellan_daemon.sessions import SessionBook
from magellan_daemon.timefmt import NEW_YORK
from strategies.api.descriptor import Drive
from strategies.api.model import Bar
from strategies.api.session import Session

# The lines of the session jobs, under the name they had before the drives moved here.
log = logging.getLogger("magellan_daemon.runtime.jobs")
HOURLY_LAG = timedelta(seconds=2)  # ask for an hourly bar just after it completes
HOURLY_FETCH_BACK = timedelta(hours=6)  # an hourly job asks for this much (a missed bar too)
SIGNAL_DELAY = timedelta(minutes=5)  # the daily signal runs this long after the close
DAILY_FETCH_BACK = timedelta(days=10)  # the daily signal asks from this long before the open
Fetch = Callable[[StrategyRunner, datetime, datetime], Awaitable[list[Bar]]]


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionJob:
    """A job a drive wants run: ``key`` identifies it (the scheduler plans a key once),
    ``label`` names it in the logs, ``arg`` is what the drive's ``run`` gets."""

    key: str
    label: str
    when: datetime
    arg: Any


@dataclass(frozen=True, slots=True, kw_only=True)
class DriveContext:
    """What a drive's job works with: the bars over REST, the calendar, the clock."""

    fetch: Fetch
    sessions: Callable[[], SessionBook]
    clock: Clock


class StrategyDrive(Protocol):
    """What one way of driving strategies means to the daemon and the backtest."""

    name: ClassVar[Drive]
    bar_stream: ClassVar[bool]  # fed by the market-data websocket (one per account)
    minute_clock: ClassVar[bool]  # ticked each minute (``Strategy.on_clock``)
    executes_at_open: ClassVar[bool]  # may leave intents for the next open

    def owed_jobs(self, sessions: SessionBook, now: datetime) -> list[SessionJob]:
        """Jobs owed at startup whatever session comes next (a signal still to run)."""
        ...

    def session_jobs(self, session: Session, now: datetime) -> list[SessionJob]:
        """The jobs of ``session`` still ahead at ``now``."""
        ...

    async def run(
        self, job: SessionJob, runners: Sequence[StrategyRunner], context: DriveContext
    ) -> None:
        """Do one of its jobs for the running strategies it drives (in config order)."""
        ...

    def backtest_instant(self, bar: Bar, sessions: SessionBook) -> datetime | None:
        """When the backtest hands ``bar`` to the strategy: when the daemon would have it
        (None: never, a daily bar of no session)."""
        ...


def owed_signal_session(sessions: SessionBook, now: datetime) -> Session | None:
    """The session whose daily bar the next daily signal evaluates, if one is owed now: the
    last session that has closed, as long as the next session has not opened."""
    previous = sessions.previous(now)
    if previous is None:
        return None
    following = sessions.next_after(previous)
    if following is None or now < following.open:
        return previous
    return None


def daily_bar_completed(bar: Bar, sessions: SessionBook, now: datetime) -> bool:
    """A daily bar counts once its session has closed (the bar of a session still open is
    still forming)."""
    session = sessions.on(_new_york_date(bar.t))
    return session is not None and session.close <= now


def _new_york_date(t: datetime) -> date:
    return t.astimezone(NEW_YORK).date()


def _completes(bar: Bar) -> datetime:
    return bar.t + TIMEFRAME_LENGTH[bar.timeframe]


class MinuteStream:
    """Every 1Min bar as the stream delivers it, and the minute clock: no session jobs."""

    name: ClassVar[Drive] = "minute_stream"
    bar_stream: ClassVar[bool] = True
    minute_clock: ClassVar[bool] = True
    executes_at_open: ClassVar[bool] = False  # intraday: every order goes out at once

    def owed_jobs(self, sessions: SessionBook, now: datetime) -> list[SessionJob]:
        """None: what the stream missed while down, the bar feed backfills."""
        return []

    def session_jobs(self, session: Session, now: datetime) -> list[SessionJob]:
        """None: the bar stream and the minute clock drive it."""
        return []

    async def run(
        self, job: SessionJob, runners: Sequence[StrategyRunner], context: DriveContext
    ) -> None:
        """Never called: it plans no job."""
        raise RuntimeError(f"the minute stream plans no job ({job.key})")

    def backtest_instant(self, bar: Bar, sessions: SessionBook) -> datetime | None:
        """As the bar completes (the stream sends it then)."""
        return _completes(bar)


class HourlyBars:
    """Each clock-hour bar inside the session, fetched just after it completes."""

    name: ClassVar[Drive] = "hourly_bars"
    bar_stream: ClassVar[bool] = False
    minute_clock: ClassVar[bool] = False
    executes_at_open: ClassVar[bool] = True  # the bar ending at the close

    def owed_jobs(self, sessions: SessionBook, now: datetime) -> list[SessionJob]:
        """None: each job fetches the last hours, so a missed bar comes with the next one."""
        return []

    def session_jobs(self, session: Session, now: datetime) -> list[SessionJob]:
        """One job per clock-hour bar that starts at or after the first full hour of the
        session and ends by its close (bars 10:00..15:00 start on a full day)."""
        hour_length = TIMEFRAME_LENGTH["1Hour"]
        hour = session.open.astimezone(NEW_YORK).replace(minute=0, second=0, microsecond=0)
        hour += hour_length
        jobs = []
        while hour + hour_length <= session.close:
            end = hour + hour_length
            if end > now:
                jobs.append(
                    SessionJob(
                        key=f"hourly-{end.isoformat()}",
                        label="hourly evaluation",
                        when=end + HOURLY_LAG,
                        arg=end,
                    )
                )
            hour = end
        return jobs

    async def run(
        self, job: SessionJob, runners: Sequence[StrategyRunner], context: DriveContext
    ) -> None:
        """The hourly bars completed by the job's bar end, to each strategy."""
        bar_end: datetime = job.arg
        for runner in runners:
            bars = await context.fetch(runner, bar_end - HOURLY_FETCH_BACK, bar_end)
            completed = [b for b in bars if _completes(b) <= bar_end]
            fresh = await runner.feed(completed)
            if not fresh:
                log.info(
                    "%s: hourly evaluation at %s: no new bar",
                    runner.name,
                    bar_end.astimezone(NEW_YORK),
                )

    def backtest_instant(self, bar: Bar, sessions: SessionBook) -> datetime | None:
        """As the bar completes (the daemon's job asks for it seconds later)."""
        return _completes(bar)


class DailySignal:
    """The daily bar of a session, evaluated once the session has closed."""

    name: ClassVar[Drive] = "daily_signal"
    bar_stream: ClassVar[bool] = False
    minute_clock: ClassVar[bool] = False
    executes_at_open: ClassVar[bool] = True

    def owed_jobs(self, sessions: SessionBook, now: datetime) -> list[SessionJob]:
        """The signal of the session whose daily bar is owed now, if one is."""
        owed = owed_signal_session(sessions, now)
        return [] if owed is None else [self._signal(owed, now)]

    def session_jobs(self, session: Session, now: datetime) -> list[SessionJob]:
        """The session's signal, unless its time has passed (then it was owed)."""
        return [self._signal(session, now)] if session.close + SIGNAL_DELAY > now else []

    def _signal(self, session: Session, now: datetime) -> SessionJob:
        return SessionJob(
            key=f"daily-signal-{session.date}",
            label="daily signal",
            when=max(now, session.close + SIGNAL_DELAY),
            arg=session,
        )

    async def run(
        self, job: SessionJob, runners: Sequence[StrategyRunner], context: DriveContext
    ) -> None:
        """The session's daily bar (and any completed one missed before it) to each
        strategy."""
        for runner in runners:
            await self._signal_of(runner, job.arg, context)

    async def _signal_of(
        self, runner: StrategyRunner, session: Session, context: DriveContext
    ) -> None:
        consumed = {s for s, t in runner.last_bar.items() if _new_york_date(t) >= session.date}
        # Taken as warm-up by this start, the bar was never evaluated: its signal is lost (the
        # warm-up keeps the owed session's bar out, so this is a defect). Otherwise a run
        # before this one evaluated it (a restart after the signal): nothing is owed.
        lost = sorted(
            s
            for s in consumed
            if (warmed := runner.warmed.get(s)) is not None
            and _new_york_date(warmed) >= session.date
        )
        if lost:
            log.error(
                "daily signal for %s: the bar of that session was taken as warm-up by this "
                "start for %s: no signal for them",
                session.date,
                ", ".join(lost),
            )
        done = sorted(consumed - set(lost))
        if done:
            log.info(
                "daily signal for %s: already evaluated before this start for %s",
                session.date,
                ", ".join(done),
            )
        now = context.clock.now()
        bars = await context.fetch(runner, session.open - DAILY_FETCH_BACK, now)
        book = context.sessions()
        todays = [
            b
            for b in bars
            if _new_york_date(b.t) <= session.date and daily_bar_completed(b, book, now)
        ]
        fresh = await runner.feed(todays)
        if fresh:
            log.info("daily signal for %s: %d new bars evaluated", session.date, fresh)
        elif not consumed:
            log.info("daily signal for %s: nothing new (no bar of that session yet)", session.date)

    def backtest_instant(self, bar: Bar, sessions: SessionBook) -> datetime | None:
        """At its session's close + 5 minutes, when the daemon's signal runs."""
        session = sessions.on(_new_york_date(bar.t))
        return None if session is None else session.close + SIGNAL_DELAY


# In the order their session jobs are planned (a job of the same instant runs in that order).
DRIVES: dict[Drive, StrategyDrive] = {
    d.name: d for d in (MinuteStream(), HourlyBars(), DailySignal())
}


def drive_of(name: Drive) -> StrategyDrive:
    """The drive a descriptor names; ``KeyError`` names the known ones."""
    try:
        return DRIVES[name]
    except KeyError:
        raise KeyError(f"unknown drive {name!r} (known: {', '.join(DRIVES)})") from None
