"""The daemon's market data: the broker's calendar, history for warm-up and the jobs, and
the minute-bar streams with their minute clocks.

Every read is a broker call retried with backoff on retryable errors (bounded and logged),
so a bad minute at Alpaca delays READY by seconds instead of aborting it. At startup a read
that still fails is raised; later it is logged and the job goes without.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import TypeVar

from magellan_core.clock import Clock
from magellan_daemon.adapters.alpaca.rest import AlpacaBroker
from magellan_daemon.adapters.alpaca.stream import SupervisedStream, bar_stream
from magellan_daemon.config.loading import MagellanConfig
from magellan_daemon.errors import BrokerError
from magellan_daemon.execution.retrying import retried
from magellan_daemon.node.endpoint import Endpoint
from magellan_daemon.runtime.bar_feed import BarFeed
from magellan_daemon.runtime.drives import drive_of
from magellan_daemon.runtime.jobs import warmup_bars
from magellan_daemon.runtime.strategy_runner import TIMEFRAME_LENGTH, StrategyRunner
from magellan_daemon.sessions import SessionBook, calendar_window
from magellan_daemon.tasks import Supervisor
from magellan_daemon.timefmt import NEW_YORK
from strategies.api.model import Bar

log = logging.getLogger(__name__)
T = TypeVar("T")
STARTUP_ATTEMPTS = 6  # per broker call: about 15 s of backoff at most
# The minute clock runs after the minute's bars had their chance to arrive.
MINUTE_CLOCK_OFFSET = timedelta(minutes=1, seconds=5)
WARMUP_LOOKBACK = {"1Day": timedelta(days=420), "1Hour": timedelta(days=60)}
# Minute bars are warmed up from the open of the last session that closed (before today's,
# when today's is open): a minute strategy's windows fit in one session (Bear Trap's longest
# is 20 bars), and each older session would be 390 more bars per symbol read at startup.
MINUTE_WARMUP_FALLBACK = timedelta(days=4)  # when the calendar does not know that session


class MarketData:
    """The calendar, history and minute bars of one daemon."""

    def __init__(
        self,
        *,
        config: MagellanConfig,
        clock: Clock,
        brokers: Mapping[str, AlpacaBroker],
        endpoints: Mapping[str, Endpoint],
        supervisor: Supervisor,
    ) -> None:
        self._config = config
        self._clock = clock
        self._brokers = brokers
        self._endpoints = endpoints
        self._supervisor = supervisor
        self.sessions = SessionBook([])
        self.bar_streams: dict[str, SupervisedStream] = {}
        self.bar_feeds: dict[str, BarFeed] = {}  # by account, as the bar streams

    async def _retried(self, call: Callable[[], Awaitable[T]]) -> T:
        """A broker call retried with backoff on retryable errors (startup, data reads)."""
        return await retried(
            self._clock, call, attempts=STARTUP_ATTEMPTS, first_wait=0.25, max_wait=4.0
        )

    # -- calendar ------------------------------------------------------------------------

    async def load_sessions(self) -> None:
        """The broker's clock logged and its calendar around today loaded (raises when the
        broker cannot be read)."""
        start, end = calendar_window(self._clock.now())
        broker = next(iter(self._brokers.values()))
        market = await self._retried(broker.market_clock)
        log.info(
            "broker clock: market %s, next open %s, next close %s",
            "OPEN" if market.is_open else "closed",
            market.next_open.astimezone(NEW_YORK).strftime("%Y-%m-%d %H:%M ET"),
            market.next_close.astimezone(NEW_YORK).strftime("%Y-%m-%d %H:%M ET"),
        )
        sessions = await self._retried(lambda: broker.sessions(start, end))
        self.sessions = SessionBook(sessions)
        span = self.sessions.span()
        log.info(
            "calendar: %d sessions%s",
            len(self.sessions),
            f" from {span[0]} to {span[1]}" if span else "",
        )

    # -- history -------------------------------------------------------------------------

    async def warm(self, runner: StrategyRunner) -> int:
        """History the strategy has not seen, up to the last completed bar, as warm-up. The
        daily bar the next signal owns (and any of a session still open) stays out."""
        now = self._clock.now()
        bars = await self.fetch(runner, self.warmup_start(runner.timeframe, now), now, startup=True)
        length = TIMEFRAME_LENGTH[runner.timeframe]
        return await runner.warmup(warmup_bars(bars, runner.timeframe, self.sessions, now, length))

    def warmup_start(self, timeframe: str, now: datetime) -> datetime:
        """Where the warm-up history of ``timeframe`` bars starts at ``now``."""
        lookback = WARMUP_LOOKBACK.get(timeframe)
        if lookback is not None:
            return now - lookback
        last = self.sessions.previous(now)
        return now - MINUTE_WARMUP_FALLBACK if last is None else last.open

    async def fetch(
        self, runner: StrategyRunner, start: datetime, end: datetime, *, startup: bool = False
    ) -> list[Bar]:
        """The runner's bars from ``start`` to ``end`` (retried); at startup a failure is
        raised, later it is logged and the job goes without."""
        broker = self._brokers[self._config.strategies[runner.name].account]
        if not runner.symbols or self._config.strategies[runner.name].spec.whole_market:
            return []
        try:
            found = await self._retried(
                lambda: broker.bars(runner.symbols, runner.timeframe, start, end),  # type: ignore[arg-type]
            )
        except BrokerError as exc:
            if startup:
                raise
            log.warning("bars for %s unavailable: %s", runner.name, exc)
            return []
        return [b for rows in found.values() for b in rows]

    # -- minute bars ---------------------------------------------------------------------

    def minute_runners(self, runners: Mapping[str, StrategyRunner]) -> dict[str, StrategyRunner]:
        """The runners fed by the minute-bar stream, by account (one per account: config)."""
        return {
            self._config.strategies[name].account: runner
            for name, runner in runners.items()
            if drive_of(self._config.strategies[name].spec.drive).bar_stream
        }

    def start_bar_streams(self, runners: Mapping[str, StrategyRunner]) -> None:
        """A supervised minute-bar stream (through a gapless ``BarFeed``) per minute runner."""
        for account, runner in self.minute_runners(runners).items():
            self._start_bar_stream(account, runner)

    def _start_bar_stream(self, account: str, runner: StrategyRunner) -> None:
        endpoint = self._endpoints[account]

        async def fetch(start: datetime, end: datetime) -> list[Bar]:
            return await self.fetch(runner, start, end)

        feed = BarFeed(runner, fetch, self._clock)
        self.bar_feeds[account] = feed
        stream = bar_stream(
            account=account,
            key=endpoint.key,
            secret=endpoint.secret,
            feed=self._config.feed,
            url=endpoint.data_ws,
            symbols=runner.symbols,
            on_bars=feed.on_batch,
            on_connected=feed.on_connected,
        )
        self.bar_streams[account] = stream
        stream.start(self._supervisor.spawn)

    async def minute_clock(self, account: str, runner: StrategyRunner) -> None:
        """A few seconds after each minute: time-driven exits for symbols with no bar, and a
        check that the minute-bar stream still speaks during the session."""
        while True:
            now = self._clock.now()
            await self._clock.sleep_until(
                now.replace(second=0, microsecond=0) + MINUTE_CLOCK_OFFSET
            )
            now = self._clock.now()
            runner.post_clock(now)
            await self._check_bar_silence(account, now)

    async def _check_bar_silence(self, account: str, now: datetime) -> None:
        feed, stream = self.bar_feeds.get(account), self.bar_streams.get(account)
        session = self.sessions.for_bar_start(now)
        if feed is None or stream is None or session is None:
            return
        if session.open < now <= session.close and feed.silent(now, session.open):
            log.warning("%s: no bar in the session for a while: reconnecting", stream.name)
            await stream.reconnect()
            feed.heard()

    async def stop_bar_streams(self) -> None:
        """Stop every minute-bar stream (teardown)."""
        for stream in self.bar_streams.values():
            await stream.stop()
