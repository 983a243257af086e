"""The daemon's lifecycle: ordered startup, teardown that always finishes, fatal paths.

The trading parts come from the kernel (``node.kernel``, shared with the backtest); around
them the daemon adds only what a live process has: the brokers over HTTP, the trade streams
(``trade_streams``), the calendar, history and minute bars (``market_data``), the recovery,
the scheduler and its jobs, the guard's clock (``guard_clock``), emergency stops
(``emergency``), metrics, the status page, notifications and the control channel. The
teardown's steps run through ``teardown``; the status and health through ``health``.

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
import logging
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from magellan_core.clock import Clock
from magellan_daemon.adapters.alpaca.rest import AlpacaBroker
from magellan_daemon.adapters.alpaca.stream import SupervisedStream
from magellan_daemon.config.loading import MagellanConfig, StrategyConfig
from magellan_daemon.errors import BrokerError, BrokerFatal
from magellan_daemon.execution.events import EventSink
from magellan_daemon.execution.position_guard import PositionGuard
from magellan_daemon.execution.router import OrderRouter
from magellan_daemon.ledger.control import ControlChannel
from magellan_daemon.ledger.store import LEDGER_FILE, Ledger
from magellan_daemon.ledger.tradelog import rebuild_all
from magellan_daemon.node.commands import OperatorCommands
from magellan_daemon.node.emergency import EmergencyStops
from magellan_daemon.node.endpoint import Endpoint
from magellan_daemon.node.guard_clock import GuardClock
from magellan_daemon.node.health import ReportParts, SelfReport
from magellan_daemon.node.kernel import Kernel, build_kernel
from magellan_daemon.node.market_data import MarketData
from magellan_daemon.node.teardown import Step, tear_down
from magellan_daemon.node.trade_streams import TradeStreams
from magellan_daemon.notify.service import build_notifications
from magellan_daemon.notify.summary import daily_summary
from magellan_daemon.observability.metrics import Metrics, MetricsServer
from magellan_daemon.reconciliation.corporate_watch import PRE_OPEN
from magellan_daemon.reconciliation.holdings import holding_views
from magellan_daemon.reconciliation.recovery import Recovery
from magellan_daemon.runtime.jobs import SessionJobs
from magellan_daemon.runtime.pending import expire_unrouted
from magellan_daemon.runtime.scheduler import JobScheduler
from magellan_daemon.runtime.strategy_runner import StrategyRunner
from magellan_daemon.sessions import SessionBook
from magellan_daemon.tasks import Supervisor
from magellan_daemon.web.server import StatusServer, start_status_page
from strategies.api.model import OrderUpdate
from strategies.registry import descriptor

log = logging.getLogger(__name__)
EXIT_OK, EXIT_FAILURE, EXIT_BROKER_FATAL = 0, 1, 3
UNACKED_CHECK_SECONDS = 5.0
OPEN_ORDER_POLL_SECONDS = 5.0


class Daemon:
    """All the parts of one running Magellan process: the kernel (``node.kernel``) with
    what only the live daemon has around it. Beside its nine commands it has read-only
    properties that name the kernel's parts for their readers (status page, modes, tests)."""

    def __init__(
        self,
        *,
        config: MagellanConfig,
        endpoints: dict[str, Endpoint],
        clock: Clock,
        state_dir: Path,
        log_dir: Path,
        mode: str = "paper",
    ) -> None:
        self.config = config
        self.clock = clock
        self.state_dir = state_dir
        self.log_dir = log_dir
        self.mode = mode  # the runtime that built this daemon says which
        self.ready = asyncio.Event()
        self.exit_code = EXIT_OK
        self._endpoints = endpoints
        self._stop_requested = asyncio.Event()
        self.supervisor = Supervisor(self._task_died)
        self.metrics = Metrics()
        self.metrics_server: MetricsServer | None = None
        self.web: StatusServer | None = None  # the status page ([web]), started at READY
        self.kernel: Kernel[AlpacaBroker] = build_kernel(
            clock=clock,
            ledger_path=state_dir / LEDGER_FILE,
            log_dir=log_dir,
            strategies=self._enabled(),
            brokers=self._brokers,
            sessions=lambda: self.market.sessions,
            on_fatal=self.broker_fatal,
            close_margin=timedelta(minutes=config.guard.close_margin_minutes),
            after_update=self._after_update,
            metrics=self.metrics,
            confirm_positions=self._poll_open_orders_now,
        )
        kernel = self.kernel
        self.notifications = build_notifications(
            config.notify, lambda day: daily_summary(kernel.ledger, kernel.runners, day)
        )
        self.control = ControlChannel(state_dir / LEDGER_FILE)
        self.market = MarketData(
            config=config,
            clock=clock,
            brokers=kernel.brokers,
            endpoints=endpoints,
            supervisor=self.supervisor,
        )
        self.streams = TradeStreams(endpoints)
        self.scheduler = JobScheduler(clock)
        self.jobs = SessionJobs(
            scheduler=self.scheduler,
            clock=clock,
            runners=kernel.runners,
            specs={name: strategy.spec for name, strategy in config.strategies.items()},
            sessions=lambda: self.market.sessions,
            fetch=self.market.fetch,
            after_close=self._after_close,
            pre_open=kernel.corporate.pre_open,
            pre_open_lead=PRE_OPEN,
        )
        self.recovery = Recovery(
            ledger=kernel.ledger,
            path=kernel.path,
            sink=kernel.sink,
            clock=clock,
            accounts=list(endpoints),
            reconnect=self.streams.reconnect,
        )
        self.recovery.pending_splits = kernel.corporate.pending_splits
        self.recovery.on_position_difference = kernel.corporate.position_difference
        self.guard_clock = GuardClock(
            guard=kernel.guard, scheduler=self.scheduler, clock=clock, ready=self.ready
        )
        self.commands = OperatorCommands(
            control=self.control,
            ledger=kernel.ledger,
            router=kernel.router,
            running=lambda: sorted(kernel.runners),
        )
        self.report = SelfReport(self._report_parts())
        self.emergency = EmergencyStops(
            strategies=config.strategies, ledger=kernel.ledger, clock=clock
        )

    def __repr__(self) -> str:
        return (
            f"Daemon(strategies={sorted(self.runners)}, accounts={sorted(self.brokers)}, "
            f"router={self.router.stats}, events={self.kernel.sink.applied})"
        )

    def _enabled(self) -> dict[str, StrategyConfig]:
        return {n: s for n, s in self.config.strategies.items() if s.enabled}

    def _brokers(self, _sink: EventSink) -> dict[str, AlpacaBroker]:
        """Each account's REST client (its news arrives on the trade stream, not here)."""
        return {
            name: AlpacaBroker(
                account=name,
                key=endpoint.key,
                secret=endpoint.secret,
                paper=endpoint.paper,
                trading_url=endpoint.trading_url,
                data_url=endpoint.data_url,
                feed=self.config.feed,
                adjustment=self.config.adjustment,
                requests_per_minute=self.config.accounts[name].requests_per_minute,
            )
            for name, endpoint in self._endpoints.items()
        }

    def _report_parts(self) -> ReportParts:
        kernel = self.kernel
        return ReportParts(
            mode=self.mode,
            strategies=tuple(self.config.strategies),
            clock=self.clock,
            ready=self.ready,
            supervisor=self.supervisor,
            metrics=self.metrics,
            ledger=kernel.ledger,
            control=self.control,
            router=kernel.router,
            path=kernel.path,
            sink=kernel.sink,
            guard=kernel.guard,
            recovery=self.recovery,
            scheduler=self.scheduler,
            brokers=kernel.brokers,
            runners=kernel.runners,
            trade_streams=self.streams.streams,
            bar_streams=self.market.bar_streams,
        )

    # -- the kernel's parts, as the status page, the modes and the tests read them --------

    @property
    def ledger(self) -> Ledger:
        """The ledger."""
        return self.kernel.ledger

    def _trade_stream_connected(self, account: str) -> None:
        """A trade stream (re)connected: news may have been missed, so the account is read
        again before the next entry, and the reconciliation is scheduled."""
        self.router.account_unknown(account)
        self.recovery.schedule(account)

    @property
    def router(self) -> OrderRouter:
        """The order router."""
        return self.kernel.router

    @property
    def guard(self) -> PositionGuard:
        """The position guard."""
        return self.kernel.guard

    @property
    def runners(self) -> dict[str, StrategyRunner]:
        """The running strategies' runners, by name."""
        return self.kernel.runners

    @property
    def brokers(self) -> Mapping[str, AlpacaBroker]:
        """Each account's REST client."""
        return self.kernel.brokers

    @property
    def sessions(self) -> SessionBook:
        """The broker's calendar as last loaded."""
        return self.market.sessions

    @property
    def trade_streams(self) -> dict[str, SupervisedStream]:
        """Each account's trade-update stream."""
        return self.streams.streams

    # -- startup -------------------------------------------------------------------------

    async def start(self) -> None:
        """Bring every part up in order; raises when the broker cannot be read."""
        if self.notifications is not None:
            self.notifications.start(lambda c: self.supervisor.spawn(c, name="notifications"))
        await asyncio.to_thread(rebuild_all, self.ledger, self.log_dir)
        self.supervisor.spawn(self.kernel.trade_log.run(), name="trade-log")
        await self.market.load_sessions()
        for name, strategy in self._enabled().items():
            self._restore_strategy(name, strategy)
        self._expire_unrouted_intents()
        self.router.keep_accounts_in_memory()
        self.streams.start(
            on_event=self.kernel.sink.apply,
            on_connected=self._trade_stream_connected,
            supervisor=self.supervisor,
        )
        await self.streams.wait_connected()
        for account in self._endpoints:
            await self.recovery.settle(account)  # the one the stream's connection scheduled
        # Splits of the last days (the daemon may have been down on an ex-date) applied to
        # the ledger and the strategies' state before they are synced and warmed up.
        try:
            await self.kernel.corporate.catch_up()
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
            fed = await self.market.warm(runner)
            log.info(
                "strategy %s: %d symbols, %d warm-up bars", runner.name, len(runner.symbols), fed
            )
        self.market.start_bar_streams(self.runners)
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

    def _restore_strategy(self, name: str, config: StrategyConfig) -> None:
        build, params = descriptor(name).build, config.params
        runner = self.kernel.new_runner(name)
        restored = runner.restore(lambda state: build(params, state, explain_skips=False))
        self.runners[name] = runner
        self.supervisor.spawn(runner.run(), name=f"strategy-{name}")
        log.info("strategy %s: %s", name, "restored from the ledger" if restored else "fresh")

    async def _poll_open_orders_now(self) -> None:
        """The open-order poll now, on every account (the position guard asks it at the close:
        a fill the trade stream has not delivered is not a position held overnight)."""
        for account in self._endpoints:
            await self.recovery.poll_open_orders(account)

    def _expire_unrouted_intents(self) -> None:
        """Intents to be sent at once that a previous process wrote and never routed: their
        moment has passed, so they are not sent now; their strategy decides again."""
        expire_unrouted(self.ledger, self.clock.now())

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
        for account, runner in self.market.minute_runners(self.runners).items():
            critical(self.market.minute_clock(account, runner), name=f"minute-clock-{runner.name}")
        critical(self.guard_clock.run(), name="position-guard")
        critical(self.commands.poll_forever(), name="control")

    # -- broker events -------------------------------------------------------------------

    def _after_update(self, strategy: str, update: OrderUpdate) -> None:
        """After the sink's news reached the strategy's worker: the guard looks soon, and a
        closing sell may trip the strategy's emergency stop."""
        self.guard_clock.soon()
        if update.kind == "fill" and update.side == "sell":
            self.check_emergency(strategy)

    def check_emergency(self, strategy: str) -> None:
        """Evaluate the strategy's emergency-stop conditions (``node.emergency``)."""
        self.emergency.check(strategy)

    # -- fatal paths ---------------------------------------------------------------------

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
            await self.market.load_sessions()
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
        steps = [
            Step("scheduler", self.scheduler.shutdown, 20),
            Step("bar streams", self.market.stop_bar_streams, 10),
            Step("orders", self.router.drain, drain_seconds + 1, (drain_seconds,)),
            Step("lanes", self.router.cancel_lanes, 5),
            Step("position guard", self._stop_guard, 1),
            Step("tasks", self.supervisor.cancel_all, 10),
            Step("trade streams", self.streams.stop, 10),
        ]
        if self.web is not None:
            steps.append(Step("web", self.web.stop, 5))
        steps += [
            Step("metrics", self._stop_metrics, 5),
            Step("trade log", self.kernel.trade_log.flush, 10),
            Step("brokers", self._close_brokers, 5),
        ]
        if self.notifications is not None:
            steps.append(Step("notify", self.notifications.stop, 12))
        steps.append(Step("ledger", self._close_ledger, 10))
        await tear_down(steps)

    async def _stop_guard(self) -> None:
        self.kernel.guard.stop()  # its look at the broker is no task of the supervisor's

    async def _stop_metrics(self) -> None:
        if self.metrics_server is not None:
            await self.metrics_server.stop()

    async def _close_brokers(self) -> None:
        for broker in self.kernel.brokers.values():
            broker.close()

    async def _close_ledger(self) -> None:
        for runner in self.runners.values():
            runner.save()
        self.control.close()
        self.ledger.close()
