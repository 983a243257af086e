"""The jobs of each trading session, planned from the broker's calendar.

For every session: the pending intents go out at the open + the strategies' execution delay;
Hourly Swing is evaluated as each clock-hour bar inside the session completes; Daily Trend's
signal runs at the close + 5 minutes (16:05, or 13:05 on an early close); after the close the
unsent intents expire and the next sessions are planned.

Which session's daily bar the next daily signal owns is decided once, from the calendar
(``owed_signal_session``): the last closed session whose next open has not come yet, from its
close onward. Its signal is always planned, at ``max(now, close + 5 min)``, whenever the
daemon starts (at 16:02, at 16:06, or at 03:00 after a night down), and its bar is kept out
of the warm-up, so the signal job is the one that evaluates it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta

from magellan_core.clock import Clock
from magellan_daemon.runtime.scheduler import JobScheduler
from magellan_daemon.runtime.strategy_runner import StrategyRunner
from magellan_daemon.sessions import SessionBook
from magellan_daemon.timefmt import NEW_YORK
from strategies.descriptor import Drive, StrategySpec
from strategies.model import Bar
from strategies.session import Session

log = logging.getLogger(__name__)
HOURLY_LAG = timedelta(seconds=2)  # ask for an hourly bar just after it completes
SIGNAL_DELAY = timedelta(minutes=5)  # the daily signal runs this long after the close
Fetch = Callable[[StrategyRunner, datetime, datetime], Awaitable[list[Bar]]]


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
    session = sessions.on(bar.t.astimezone(NEW_YORK).date())
    return session is not None and session.close <= now


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
        self._specs = specs
        self._sessions = sessions
        self._fetch = fetch
        self._on_close = after_close
        self._pre_open = pre_open
        self._pre_open_lead = pre_open_lead

    def _driven(self, *drives: Drive) -> list[StrategyRunner]:
        """The running strategies driven in one of these ways (in config order)."""
        return [r for n, r in self._runners.items() if self._specs[n].drive in drives]

    def owed(self) -> Session | None:
        """``owed_signal_session`` now."""
        return owed_signal_session(self._sessions(), self._clock.now())

    def plan(self) -> None:
        """Plan the owed daily signal, the current (or next) session and the one after it."""
        now = self._clock.now()
        owed = self.owed()
        if owed is not None and self._driven("daily_signal"):
            self._plan_signal(owed, now)
        session = self._sessions().current_or_next(now)
        for _ in range(2):
            if session is None:
                break
            self._plan_session(session)
            session = self._sessions().next_after(session)

    def _plan_signal(self, session: Session, now: datetime) -> None:
        self._scheduler.at(
            f"daily-signal-{session.date}",
            "daily signal",
            max(now, session.close + SIGNAL_DELAY),
            self._daily_signal,
            session,
        )

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
        if self._driven("hourly_bars"):
            hour = session.open.astimezone(NEW_YORK).replace(minute=0, second=0, microsecond=0)
            hour += timedelta(hours=1)
            while hour + timedelta(hours=1) <= session.close:
                end = hour + timedelta(hours=1)
                if end > now:
                    self._scheduler.at(
                        f"hourly-{end.isoformat()}",
                        "hourly evaluation",
                        end + HOURLY_LAG,
                        self._hourly,
                        end,
                    )
                hour = end
        if self._driven("daily_signal") and session.close + SIGNAL_DELAY > now:
            self._plan_signal(session, now)
        self._scheduler.at(
            f"close-{day}",
            "session close",
            max(now, session.close + timedelta(minutes=10)),
            self._after_close,
            session,
        )

    async def _execute_pending(self) -> None:
        total_sent = total_expired = 0
        for runner in self._at_open():
            sent, expired = await runner.execute_pending()
            total_sent, total_expired = total_sent + sent, total_expired + expired
            if sent or expired:
                log.info("%s: %d pending intents routed, %d expired", runner.name, sent, expired)
        if not (total_sent or total_expired):
            log.info("pending intents: none due")

    async def _hourly(self, bar_end: datetime) -> None:
        for runner in self._driven("hourly_bars"):
            bars = await self._fetch(runner, bar_end - timedelta(hours=6), bar_end)
            completed = [b for b in bars if b.t + timedelta(hours=1) <= bar_end]
            fresh = await runner.feed(completed)
            if not fresh:
                log.info(
                    "%s: hourly evaluation at %s: no new bar",
                    runner.name,
                    bar_end.astimezone(NEW_YORK),
                )

    async def _daily_signal(self, session: Session) -> None:
        for runner in self._driven("daily_signal"):
            await self._daily_signal_of(runner, session)

    async def _daily_signal_of(self, runner: StrategyRunner, session: Session) -> None:
        consumed = sorted(
            s for s, t in runner.last_bar.items() if t.astimezone(NEW_YORK).date() >= session.date
        )
        if consumed:
            log.error(
                "daily signal for %s: the bar of that session was already consumed for %s "
                "(by warm-up?): no signal for them",
                session.date,
                ", ".join(consumed),
            )
        now = self._clock.now()
        bars = await self._fetch(runner, session.open - timedelta(days=10), now)
        book = self._sessions()
        todays = [
            b
            for b in bars
            if b.t.astimezone(NEW_YORK).date() <= session.date and daily_bar_completed(b, book, now)
        ]
        fresh = await runner.feed(todays)
        if fresh:
            log.info("daily signal for %s: %d new bars evaluated", session.date, fresh)
        else:
            log.info("daily signal for %s: nothing new (no bar of that session yet)", session.date)

    def _at_open(self) -> list[StrategyRunner]:
        """The running strategies that may leave intents for the next open."""
        return [r for n, r in self._runners.items() if self._specs[n].executes_at_open]

    async def _after_close(self, session: Session) -> None:
        await self._execute_pending()  # expires what could not be sent
        await self._on_close(session)
        self.plan()
