"""The jobs of each trading session, planned from the broker's calendar.

For every session: the pending intents go out at the open + the strategies' execution delay;
Hourly Swing is evaluated as each clock-hour bar inside the session completes; Daily Trend's
signal runs at the close + 5 minutes (16:05, or 13:05 on an early close); after the close the
unsent intents expire and the next sessions are planned. A daily signal missed while the daemon
was down still runs on restart, as long as its orders can still go out at the next open.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta

from magellan_daemon.clock import Clock
from magellan_daemon.engine import StrategyRunner
from magellan_daemon.scheduler import JobScheduler
from magellan_daemon.sessions import NEW_YORK, SessionBook
from strategies.model import Bar
from strategies.session import Session

log = logging.getLogger(__name__)
HOURLY_LAG = timedelta(seconds=2)  # ask for an hourly bar just after it completes
Fetch = Callable[[StrategyRunner, datetime, datetime], Awaitable[list[Bar]]]


class SessionJobs:
    """Plans and runs the session jobs of the scheduled strategies."""

    def __init__(
        self,
        *,
        scheduler: JobScheduler,
        clock: Clock,
        runners: Mapping[str, StrategyRunner],
        sessions: Callable[[], SessionBook],
        fetch: Fetch,
        after_close: Callable[[Session], Awaitable[None]],
    ) -> None:
        self._scheduler = scheduler
        self._clock = clock
        self._runners = runners
        self._sessions = sessions
        self._fetch = fetch
        self._on_close = after_close

    def catch_up_session(self) -> Session | None:
        """The last closed session whose daily signal is still actionable: it is past its
        16:05 (close + 5) and the next open has not come yet. Its bar is held back from
        warm-up and evaluated by the signal job, so a daemon restarted after a missed signal
        still sends that signal's orders at the open (and never a stale one later)."""
        now = self._clock.now()
        previous = self._sessions().previous(now)
        if previous is None:
            return None
        following = self._sessions().next_after(previous)
        if previous.close + timedelta(minutes=5) <= now and (
            following is None or now < following.open
        ):
            return previous
        return None

    def plan(self) -> None:
        """Plan the jobs of the current (or next) session and the one after it."""
        now = self._clock.now()
        catch_up = self.catch_up_session()
        if catch_up is not None and "daily_trend" in self._runners:
            self._scheduler.at(
                f"daily-signal-{catch_up.date}",
                "daily signal (catch-up)",
                now,
                self._daily_signal,
                catch_up,
            )
        session = self._sessions().current_or_next(now)
        for _ in range(2):
            if session is None:
                break
            self._plan_session(session)
            session = self._sessions().next_after(session)

    def _plan_session(self, session: Session) -> None:
        day = session.date
        now = self._clock.now()
        pending_runners = [r for n, r in self._runners.items() if n != "bear_trap"]
        if pending_runners:
            delay = max((r.execution_delay for r in pending_runners), default=timedelta(0))
            self._scheduler.at(
                f"open-{day}",
                "execute pending intents",
                max(now, session.open + delay),
                self._execute_pending,
            )
        if "hourly_swing" in self._runners:
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
        if "daily_trend" in self._runners:
            signal_at = session.close + timedelta(minutes=5)
            if signal_at > now:
                self._scheduler.at(
                    f"daily-signal-{day}", "daily signal", signal_at, self._daily_signal, session
                )
        self._scheduler.at(
            f"close-{day}",
            "session close",
            max(now, session.close + timedelta(minutes=10)),
            self._after_close,
            session,
        )

    async def _execute_pending(self) -> None:
        for name, runner in self._runners.items():
            if name == "bear_trap":
                continue
            sent, expired = await runner.execute_pending()
            if sent or expired:
                log.info("%s: %d pending intents sent, %d expired", name, sent, expired)

    async def _hourly(self, bar_end: datetime) -> None:
        runner = self._runners["hourly_swing"]
        bars = await self._fetch(runner, bar_end - timedelta(hours=6), bar_end)
        await runner.on_bars([b for b in bars if b.t + timedelta(hours=1) <= bar_end])

    async def _daily_signal(self, session: Session) -> None:
        runner = self._runners["daily_trend"]
        bars = await self._fetch(
            runner, session.open - timedelta(days=10), session.close + timedelta(minutes=5)
        )
        todays = [b for b in bars if b.t.astimezone(NEW_YORK).date() <= session.date]
        log.info("daily signal for %s: %d bars", session.date, len(todays))
        await runner.on_bars(todays)

    async def _after_close(self, session: Session) -> None:
        await self._execute_pending()  # expires what could not be sent
        await self._on_close(session)
        self.plan()
