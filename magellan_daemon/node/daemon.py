"""The daemon's lifecycle: ordered startup, teardown that always finishes, fatal paths.

Startup (``start``), each broker call retried with backoff on retryable errors (bounded and
logged), so a bad minute at Alpaca delays READY by seconds instead of aborting it:

1. the CSV trade logs rebuilt from the ledger, the calendar loaded;
2. the strategies restored from their snapshots, each with its own worker;
3. intents a previous process wrote but never routed are expired (their strategy decides
   again), the trade-update streams started, and the first reconciliation run: the fills it
   repairs reach the restored strategies like any other news;
4. each strategy's view reconciled with the ledger (``Strategy.sync``): positions and open
   orders as the ledger knows them, protective stops placed where they are missing;
5. warm-up (completed bars only; the daily bar the next signal owns stays out of it), the
   minute-bar stream (gapless hand-off), the recovery loops, the scheduler: READY.

A broker that refuses our credentials (``BrokerFatal``) stops entries at once, is logged at
CRITICAL with what to do, and ends the process with ``EXIT_BROKER_FATAL`` (systemd does not
restart it). A critical task that dies (a fill consumer, a strategy worker, the trade-log
writer) ends it with ``EXIT_FAILURE``: systemd restarts it and startup repairs the state.

``stop`` runs every teardown step even when one fails or hangs (each is bounded): the
scheduler stops first, the bar stream next, then the orders in flight are drained, and only
then the control channel, the strategy workers and the trade streams go; the ledger is
flushed and closed last.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from magellan_core.clock import Clock
from magellan_daemon.adapters.alpaca.rest import AlpacaBroker
from magellan_daemon.adapters.alpaca.stream import (
    SupervisedStream,
    bar_stream,
    trade_updates_stream,
)
from magellan_daemon.config.loading import MagellanConfig, StrategyConfig
from magellan_daemon.errors import BrokerError, BrokerFatal
from magellan_daemon.execution.events import EventSink
from magellan_daemon.execution.order_path import OrderPath
from magellan_daemon.execution.order_watch import OrderWatch
from magellan_daemon.execution.position_guard import GuardedStrategy, PositionGuard
from magellan_daemon.execution.retrying import retried
from magellan_daemon.execution.router import OrderRouter, StrategyRouting
from magellan_daemon.ledger.control import ControlChannel
from magellan_daemon.ledger.store import LEDGER_FILE, Ledger
from magellan_daemon.ledger.tradelog import TradeLogWriter, rebuild_all
from magellan_daemon.node.commands import OperatorCommands
from magellan_daemon.node.emergency_totals import EmergencyTotals
from magellan_daemon.node.health import SelfReport
from magellan_daemon.notify.service import build_notifications
from magellan_daemon.notify.summary import daily_summary
from magellan_daemon.observability.metrics import Metrics, MetricsServer
from magellan_daemon.reconciliation.corporate_watch import PRE_OPEN, CorporateActionWatch
from magellan_daemon.reconciliation.holdings import holding_views
from magellan_daemon.reconciliation.recovery import Recovery
from magellan_daemon.runtime.bar_feed import BarFeed
from magellan_daemon.runtime.drives import drive_of
from magellan_daemon.runtime.jobs import SessionJobs, warmup_bars
from magellan_daemon.runtime.pending import expire_unrouted
from magellan_daemon.runtime.scheduler import JobScheduler
from magellan_daemon.runtime.strategy_runner import TIMEFRAME_LENGTH, StrategyRunner
from magellan_daemon.sessions import SessionBook, calendar_window
from magellan_daemon.tasks import Supervisor
from magellan_daemon.timefmt import NEW_YORK
from magellan_daemon.web.server import StatusServer, start_status_page
from strategies.model import Bar, OrderUpdate
from strategies.registry import descriptor

log = logging.getLogger(__name__)
T = TypeVar("T")
EXIT_OK, EXIT_FAILURE, EXIT_BROKER_FATAL = 0, 1, 3
STARTUP_ATTEMPTS = 6  # per broker call: about 15 s of backoff at most
STREAM_CONNECT_SECONDS = 30.0
UNACKED_CHECK_SECONDS = 5.0
OPEN_ORDER_POLL_SECONDS = 5.0
# The minute clock runs after the minute's bars had their chance to arrive.
MINUTE_CLOCK_OFFSET = timedelta(minutes=1, seconds=5)
WARMUP_LOOKBACK = {"1Day": timedelta(days=420), "1Hour": timedelta(days=60)}


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    """Where one account's APIs are and the keys to use (held only until clients exist)."""

    account: str
    key: str = field(repr=False)
    secret: str = field(repr=False)
    paper: bool
    trading_url: str | None  # None = Alpaca's own (paper or live)
    data_url: str | None
    trading_ws: str | None
    data_ws: str | None

    def __repr__(self) -> str:
        return f"Endpoint(account={self.account!r}, url={self.trading_url or 'alpaca'})"


class Daemon:
    """All the parts of one running Magellan process."""

    def __init__(
        self,
        *,
        config: MagellanConfig,
        endpoints: dict[str, Endpoint],
        clock: Clock,
        state_dir: Path,
        log_dir: Path,
    ) -> None:
        self.config = config
        self.clock = clock
        self.state_dir = state_dir
        self.log_dir = log_dir
        self.ledger = Ledger.open(state_dir / LEDGER_FILE)
        self.sessions = SessionBook([])
        self.runners: dict[str, StrategyRunner] = {}
        self.brokers: dict[str, AlpacaBroker] = {}
        self.trade_streams: dict[str, SupervisedStream] = {}
        self.bar_streams: dict[str, SupervisedStream] = {}
        self.bar_feeds: dict[str, BarFeed] = {}  # by account, as the bar streams
        self.scheduler = JobScheduler(clock)
        self.jobs = SessionJobs(
            scheduler=self.scheduler,
            clock=clock,
            runners=self.runners,
            specs={name: strategy.spec for name, strategy in config.strategies.items()},
            sessions=lambda: self.sessions,
            fetch=self._fetch,
            after_close=self._after_close,
            pre_open=self._pre_open,
            pre_open_lead=PRE_OPEN,
        )
        self.ready = asyncio.Event()
        self.exit_code = EXIT_OK
        self._endpoints = endpoints
        self._stop_requested = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self.supervisor = Supervisor(self._task_died)
        self.mode = "paper"  # set by the runtime that built this daemon
        self.metrics = Metrics()
        self.metrics_server: MetricsServer | None = None
        self.web: StatusServer | None = None  # the status page ([web]), started at READY
        self.notifications = build_notifications(
            config.notify, lambda day: daily_summary(self.ledger, self.runners, day)
        )
        self.control = ControlChannel(state_dir / LEDGER_FILE)
        self.watch = OrderWatch()
        self.trade_log = TradeLogWriter(self.ledger, log_dir)
        self.sink = EventSink(
            self.ledger, self.trade_log, self._post_update, self.watch, clock.now, self.metrics
        )
        for name, endpoint in endpoints.items():
            self.brokers[name] = AlpacaBroker(
                account=name,
                key=endpoint.key,
                secret=endpoint.secret,
                paper=endpoint.paper,
                trading_url=endpoint.trading_url,
                data_url=endpoint.data_url,
                feed=config.feed,
                adjustment=config.adjustment,
            )
        self.path = OrderPath(
            ledger=self.ledger, brokers=self.brokers, sink=self.sink, watch=self.watch, clock=clock
        )
        routing = {}
        for name, strategy in self._enabled().items():
            spec = strategy.spec
            routing[name] = StrategyRouting(
                account=strategy.account,
                limits=spec.risk,
                max_spread_pct=spec.routing.max_spread_pct,
                min_liquidity_shares=spec.routing.min_liquidity_shares,
            )
        self.router = OrderRouter(
            ledger=self.ledger,
            path=self.path,
            sink=self.sink,
            clock=clock,
            routing=routing,
            on_fatal=self.broker_fatal,
        )
        self.guard = PositionGuard(
            ledger=self.ledger,
            router=self.router,
            clock=clock,
            sessions=lambda: self.sessions,
            strategies=[
                GuardedStrategy(
                    name=name,
                    protective_stop=strategy.spec.protective_stop,
                    intraday=strategy.spec.horizon == "intraday",
                )
                for name, strategy in self._enabled().items()
            ],
            close_margin=timedelta(minutes=config.guard.close_margin_minutes),
        )
        self._guard_posted = False
        self.recovery = Recovery(
            ledger=self.ledger,
            path=self.path,
            sink=self.sink,
            clock=clock,
            accounts=list(endpoints),
            reconnect=self._reconnect_trade_stream,
        )
        self.corporate = CorporateActionWatch(
            ledger=self.ledger,
            path=self.path,
            clock=clock,
            runners=self.runners,
            watched=self._watched_symbols,
        )
        self.recovery.pending_splits = self.corporate.pending_splits
        self.recovery.on_position_difference = self.corporate.position_difference
        self.commands = OperatorCommands(
            control=self.control,
            ledger=self.ledger,
            router=self.router,
            running=lambda: sorted(self.runners),
        )
        self.report = SelfReport(self)
        self.emergency = EmergencyTotals(self.ledger)

    def __repr__(self) -> str:
        return (
            f"Daemon(strategies={sorted(self.runners)}, accounts={sorted(self.brokers)}, "
            f"router={self.router.stats}, events={self.sink.applied})"
        )

    def _enabled(self) -> dict[str, StrategyConfig]:
        return {n: s for n, s in self.config.strategies.items() if s.enabled}

    # -- startup -------------------------------------------------------------------------

    async def start(self) -> None:
        """Bring every part up in order; raises when the broker cannot be read."""
        if self.notifications is not None:
            self.notifications.start(lambda c: self.supervisor.spawn(c, name="notifications"))
        await asyncio.to_thread(rebuild_all, self.ledger, self.log_dir)
        self.supervisor.spawn(self.trade_log.run(), name="trade-log")
        await self._load_sessions()
        for name, strategy in self._enabled().items():
            self._restore_strategy(name, strategy)
        self._expire_unrouted_intents()
        for name, endpoint in self._endpoints.items():
            stream = trade_updates_stream(
                account=name,
                key=endpoint.key,
                secret=endpoint.secret,
                paper=endpoint.paper,
                url=endpoint.trading_ws,
                on_event=self.sink.apply,
                on_connected=lambda account=name: self.recovery.schedule(account),
            )
            self.trade_streams[name] = stream
            stream.start(self.supervisor.spawn)
        await self._wait_streams_connected()
        for account in self._endpoints:
            await self.recovery.settle(account)  # the one the stream's connection scheduled
        # Splits of the last days (the daemon may have been down on an ex-date) applied to
        # the ledger and the strategies' state before they are synced and warmed up.
        try:
            await self.corporate.catch_up()
        except BrokerFatal:
            raise
        except BrokerError as exc:
            # Trading goes on (the pre-open check tries again); a split it missed leaves the
            # strategies on the old scale, which is wrong: said at ERROR.
            log.error("corporate actions unreadable at startup (%s): no split applied", exc)
        for runner in self.runners.values():
            intents = await runner.sync(holding_views(self.ledger, runner.name))
            if intents:
                log.warning("strategy %s: %d intents after the restart sync", runner.name, intents)
        for runner in self.runners.values():
            fed = await self._warm(runner)
            log.info(
                "strategy %s: %d symbols, %d warm-up bars", runner.name, len(runner.symbols), fed
            )
        self._start_bar_streams()
        self._start_loops()
        if self.config.metrics_port is not None:
            self.metrics.on_scrape(self.report.refresh_metrics)
            self.metrics_server = MetricsServer(self.metrics, self.health, self.config.metrics_port)
            await self.metrics_server.start()
        self.web = await start_status_page(self)
        self.scheduler.start()
        self.jobs.plan()
        self.ready.set()
        log.info("READY: %s", self.report.line())
        if self.web is not None:
            log.info("web status page at %s", self.web.url)

    def _watched_symbols(self) -> dict[str, set[str]]:
        """Per account, the symbols its running strategies watch (a whole-market watch
        adds none: its held symbols come from the ledger)."""
        out: dict[str, set[str]] = {}
        for name in self.runners:
            config = self.config.strategies[name]
            symbols = out.setdefault(config.account, set())
            if not config.spec.whole_market:
                symbols.update(config.spec.symbols)
        return out

    async def _pre_open(self, session: Any) -> None:
        """Before each open: the session's corporate actions (``corporate_watch``)."""
        await self.corporate.pre_open(session)

    async def _retried(self, call: Callable[[], Awaitable[T]]) -> T:
        """A broker call retried with backoff on retryable errors (startup, data reads)."""
        return await retried(
            self.clock, call, attempts=STARTUP_ATTEMPTS, first_wait=0.25, max_wait=4.0
        )

    async def _load_sessions(self) -> None:
        start, end = calendar_window(self.clock.now())
        broker = next(iter(self.brokers.values()))
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

    def _restore_strategy(self, name: str, config: StrategyConfig) -> None:
        build, params = descriptor(name).build, config.params
        runner = StrategyRunner(
            name=name,
            strategy=build(params, None, explain_skips=False),
            symbols=config.spec.symbols,
            ledger=self.ledger,
            router=self.router,
            clock=self.clock,
            sessions=lambda: self.sessions,
            execution_delay=config.spec.execution_delay,
            per_symbol_state=config.spec.per_symbol_state,
        )
        restored = runner.restore(lambda state: build(params, state, explain_skips=False))
        self.runners[name] = runner
        self.supervisor.spawn(runner.run(), name=f"strategy-{name}")
        log.info("strategy %s: %s", name, "restored from the ledger" if restored else "fresh")

    def _expire_unrouted_intents(self) -> None:
        """Intents to be sent at once that a previous process wrote and never routed: their
        moment has passed, so they are not sent now; their strategy decides again."""
        expire_unrouted(self.ledger, self.clock.now())

    async def _wait_streams_connected(self) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + STREAM_CONNECT_SECONDS
        while not all(s.stats.connected for s in self.trade_streams.values()):
            if loop.time() > end:
                down = [a for a, s in self.trade_streams.items() if not s.stats.connected]
                raise BrokerError(
                    f"trade stream of {', '.join(down)} not connected in "
                    f"{STREAM_CONNECT_SECONDS:g} s"
                )
            await asyncio.sleep(0.02)

    async def _warm(self, runner: StrategyRunner) -> int:
        """History the strategy has not seen, up to the last completed bar, as warm-up. The
        daily bar the next signal owns (and any of a session still open) stays out."""
        now = self.clock.now()
        lookback = WARMUP_LOOKBACK.get(runner.timeframe, timedelta(days=4))
        bars = await self._fetch(runner, now - lookback, now, startup=True)
        length = TIMEFRAME_LENGTH[runner.timeframe]
        return await runner.warmup(warmup_bars(bars, runner.timeframe, self.sessions, now, length))

    async def _fetch(
        self, runner: StrategyRunner, start: datetime, end: datetime, *, startup: bool = False
    ) -> list[Bar]:
        """The runner's bars from ``start`` to ``end`` (retried); at startup a failure is
        raised, later it is logged and the job goes without."""
        broker = self.brokers[self.config.strategies[runner.name].account]
        if not runner.symbols or self.config.strategies[runner.name].spec.whole_market:
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

    def _minute_runners(self) -> dict[str, StrategyRunner]:
        """The runners fed by the minute-bar stream, by account (one per account: config)."""
        return {
            self.config.strategies[name].account: runner
            for name, runner in self.runners.items()
            if drive_of(self.config.strategies[name].spec.drive).bar_stream
        }

    def _start_bar_streams(self) -> None:
        for account, runner in self._minute_runners().items():
            self._start_bar_stream(account, runner)

    def _start_bar_stream(self, account: str, runner: StrategyRunner) -> None:
        endpoint = self._endpoints[account]

        async def fetch(start: datetime, end: datetime) -> list[Bar]:
            return await self._fetch(runner, start, end)

        feed = BarFeed(runner, fetch, self.clock)
        self.bar_feeds[account] = feed
        stream = bar_stream(
            account=account,
            key=endpoint.key,
            secret=endpoint.secret,
            feed=self.config.feed,
            url=endpoint.data_ws,
            symbols=runner.symbols,
            on_bar=feed.on_bar,
            on_connected=feed.on_connected,
        )
        self.bar_streams[account] = stream
        stream.start(self.supervisor.spawn)

    def _start_loops(self) -> None:
        recovery, critical = self.recovery, self.supervisor.spawn
        critical(
            recovery.forever(UNACKED_CHECK_SECONDS, recovery.resolve_unacked, "unacked check"),
            name="unacked-orders",
        )
        critical(
            recovery.forever(OPEN_ORDER_POLL_SECONDS, recovery.poll_open_orders, "open-order poll"),
            name="open-order-poll",
        )
        critical(self.report.loop(), name="status")
        critical(self.metrics.probe_loop_lag(), name="loop-lag")
        for account, runner in self._minute_runners().items():
            critical(self._minute_clock(account, runner), name=f"minute-clock-{runner.name}")
        critical(self._guard_clock(), name="position-guard")
        critical(self.commands.poll_forever(), name="control")

    async def _minute_clock(self, account: str, runner: StrategyRunner) -> None:
        """A few seconds after each minute: time-driven exits for symbols with no bar, and a
        check that the minute-bar stream still speaks during the session."""
        while True:
            now = self.clock.now()
            await self.clock.sleep_until(now.replace(second=0, microsecond=0) + MINUTE_CLOCK_OFFSET)
            now = self.clock.now()
            runner.post_clock(now)
            await self._check_bar_silence(account, now)

    async def _guard_clock(self) -> None:
        """The position guard each minute (after the minute's bars and the strategies' own
        clock ticks), and the opening-auction job for what outlived the close."""
        while True:
            self.guard.check()
            now = self.clock.now()
            due = self.guard.auction_due(now)
            if due is not None and due > now:
                # The clock may fast-forward over a closed market: a job is what it stops for.
                self.scheduler.at(
                    f"guard-auction-{due:%Y%m%d}", "opening-auction exits", due, self._guard_job
                )
            await self.clock.sleep_until(now.replace(second=0, microsecond=0) + MINUTE_CLOCK_OFFSET)

    async def _guard_job(self) -> None:
        self.guard.check()

    def _guard_soon(self) -> None:
        """After order news: the guard looks once the news has been applied (never inside
        the stream consumer's call, which must not wait on anything)."""
        if self._guard_posted or not self.ready.is_set():
            return
        self._guard_posted = True
        asyncio.get_running_loop().call_soon(self._guard_now)

    def _guard_now(self) -> None:
        self._guard_posted = False
        try:
            self.guard.check()
        except Exception:  # the minute loop (supervised) runs the same check and dies loudly
            log.exception("position guard check after order news failed")

    async def _check_bar_silence(self, account: str, now: datetime) -> None:
        feed, stream = self.bar_feeds.get(account), self.bar_streams.get(account)
        session = self.sessions.for_bar_start(now)
        if feed is None or stream is None or session is None:
            return
        if session.open < now <= session.close and feed.silent(now, session.open):
            log.warning("%s: no bar in the session for a while: reconnecting", stream.name)
            await stream.reconnect()
            feed.heard()

    async def _reconnect_trade_stream(self, account: str) -> None:
        stream = self.trade_streams.get(account)
        if stream is not None:
            await stream.reconnect()

    # -- broker events -------------------------------------------------------------------

    def _post_update(self, strategy: str, update: OrderUpdate) -> None:
        """The sink's news for a strategy: queued for its worker (never waits)."""
        runner = self.runners.get(strategy)
        if runner is not None:
            runner.post_update(update)
        self._guard_soon()
        if update.kind == "fill" and update.side == "sell":
            self.check_emergency(strategy)

    def check_emergency(self, strategy: str) -> None:
        """Evaluate the strategy's emergency-stop conditions over its closed trades (running
        totals, see ``emergency_totals``); a trip halts it as ``magellan halt`` would (exits
        keep working) and says so loudly."""
        config = self.config.strategies.get(strategy)
        if config is None or self.ledger.halted(strategy):
            return
        reason = self.emergency.reason(strategy, config.spec.emergency)
        if reason is None:
            return
        self.ledger.halt(strategy, f"emergency stop: {reason}", "emergency", self.clock.now())
        log.error(
            "EMERGENCY STOP %s: %s; no new entries until `magellan resume %s`",
            strategy,
            reason,
            strategy,
            extra={"fields": {"STRATEGY": strategy, "EVENT": "emergency_stop"}},
        )

    def broker_fatal(self, exc: BrokerFatal) -> None:
        """The broker refuses our credentials or the account: stop entries, say what to do,
        and end the process with ``EXIT_BROKER_FATAL``."""
        if self.router.entries_stopped is None:
            self.router.entries_stopped = str(exc)
            log.critical(
                "BROKER REFUSED US (%s): no new orders. Check the API key pair in the "
                "credentials file and the account's status at Alpaca, then start the daemon "
                "again. Exiting with code %d.",
                exc,
                EXIT_BROKER_FATAL,
                extra={"fields": {"EVENT": "broker_fatal"}},
            )
        self.exit_code = EXIT_BROKER_FATAL
        self.request_stop()

    def _task_died(self, name: str, exc: BaseException | None) -> None:
        if isinstance(exc, BrokerFatal):
            self.broker_fatal(exc)
            return
        log.critical(
            "task %s ended (%s): the daemon cannot trade without it; exiting with code %d so "
            "that systemd restarts it and the startup reconciliation repairs the state",
            name,
            "no error" if exc is None else f"{type(exc).__name__}: {exc}",
            EXIT_FAILURE,
            exc_info=exc,
            extra={"fields": {"EVENT": "task_died"}},
        )
        if self.exit_code == EXIT_OK:
            self.exit_code = EXIT_FAILURE
        self.request_stop()

    async def _after_close(self, session: Any) -> None:
        """After each close: emergency stops, the calendar refreshed when it runs short."""
        for name in self.runners:
            self.check_emergency(name)
        last = self.sessions.last_date()
        if last is not None and last - session.date < timedelta(days=20):
            await self._load_sessions()
        log.info("session %s closed: %s", session.date, self.report.line())

    # -- status and shutdown -------------------------------------------------------------

    def status_line(self) -> str:
        """One line a person reads: positions, next job, streams."""
        return self.report.line()

    def alive(self) -> bool:
        """The daemon's own tasks run and its loop answers (what the watchdog pings for)."""
        return self.report.alive()

    def health(self) -> tuple[bool, str]:
        """(healthy, reason): see ``SelfReport.health``."""
        return self.report.health()

    def request_stop(self) -> None:
        """Ask the daemon to drain and stop (signal handlers call this)."""
        self._stop_requested.set()

    async def wait_stop_requested(self) -> None:
        """Return when a stop was requested."""
        await self._stop_requested.wait()

    @property
    def stop_requested(self) -> bool:
        """True once a stop was requested."""
        return self._stop_requested.is_set()

    async def stop(self, drain_seconds: float = 15.0) -> None:
        """Tear down in the reverse order of startup; every step runs, each is bounded."""
        self.supervisor.stopping = True
        async with contextlib.AsyncExitStack() as stack:
            # Pushed in reverse: the last pushed runs first.
            stack.push_async_callback(self._step, "ledger", self._close_ledger, 10)
            if self.notifications is not None:
                stack.push_async_callback(self._step, "notify", self.notifications.stop, 12)
            stack.push_async_callback(self._step, "brokers", self._close_brokers, 5)
            stack.push_async_callback(self._step, "trade log", self.trade_log.flush, 10)
            stack.push_async_callback(self._step, "metrics", self._stop_metrics, 5)
            if self.web is not None:
                stack.push_async_callback(self._step, "web", self.web.stop, 5)
            stack.push_async_callback(self._step, "trade streams", self._stop_trade_streams, 10)
            stack.push_async_callback(self._step, "tasks", self._cancel_tasks, 10)
            stack.push_async_callback(self._step, "lanes", self.router.cancel_lanes, 5)
            stack.push_async_callback(
                self._step, "orders", self.router.drain, drain_seconds + 1, drain_seconds
            )
            stack.push_async_callback(self._step, "bar streams", self._stop_bar_streams, 10)
            stack.push_async_callback(self._step, "scheduler", self.scheduler.shutdown, 20)

    async def _step(self, name: str, fn: Callable[..., Awaitable[Any]], timeout: float, *args: Any):
        try:
            await asyncio.wait_for(fn(*args), timeout)
        except TimeoutError:
            log.warning("shutdown: %s did not finish in %g s; going on", name, timeout)
        except Exception:
            log.exception("shutdown: %s failed; going on", name)

    async def _stop_bar_streams(self) -> None:
        for stream in self.bar_streams.values():
            await stream.stop()

    async def _cancel_tasks(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.supervisor.cancel_all()

    async def _stop_trade_streams(self) -> None:
        for stream in self.trade_streams.values():
            await stream.stop()

    async def _stop_metrics(self) -> None:
        if self.metrics_server is not None:
            await self.metrics_server.stop()

    async def _close_brokers(self) -> None:
        for broker in self.brokers.values():
            broker.close()

    async def _close_ledger(self) -> None:
        for runner in self.runners.values():
            runner.save()
        self.control.close()
        self.ledger.close()
