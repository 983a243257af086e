"""The daemon's lifecycle: ordered startup, reversed teardown, drain on SIGTERM.

Startup: config → ledger → broker clients → trade-updates streams → first reconciliation
(refuse to go READY if the broker cannot be read) → strategies (restore + warm-up) → market
data stream → scheduler. ``stop()`` (SIGTERM/SIGINT, ``--sim-until``) then: stop the
scheduler, let the submissions in flight finish (bounded), close the streams, flush and
close the ledger, stop the embedded simulator.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from magellan_daemon import sdnotify
from magellan_daemon.broker.errors import BrokerError
from magellan_daemon.broker.rest import AlpacaBroker
from magellan_daemon.broker.stream import SupervisedStream, bar_stream, trade_updates_stream
from magellan_daemon.clock import Clock
from magellan_daemon.commands import OperatorCommands
from magellan_daemon.config import MagellanConfig, StrategyConfig, strategy_class
from magellan_daemon.control import ControlChannel
from magellan_daemon.domain import BrokerPosition
from magellan_daemon.engine import TIMEFRAME_LENGTH, StrategyRunner
from magellan_daemon.events import EventSink
from magellan_daemon.jobs import SessionJobs
from magellan_daemon.ledger.store import Ledger, parse_iso
from magellan_daemon.ledger.tradelog import rebuild_all
from magellan_daemon.metrics import HEALTHY_LAG_SECONDS, Metrics, MetricsServer
from magellan_daemon.reconcile import position_diff, reconcile
from magellan_daemon.router import OrderRouter, StrategyRouting
from magellan_daemon.scheduler import JobScheduler
from magellan_daemon.sessions import NEW_YORK, SessionBook, calendar_window
from magellan_daemon.tasks import spawn
from strategies.emergency import ClosedTrade
from strategies.emergency import evaluate as evaluate_emergency
from strategies.model import Bar, OrderUpdate
from strategies.session import Session

log = logging.getLogger(__name__)
RECONCILE_LOOKBACK = timedelta(days=7)
UNACKED_CHECK_SECONDS = 5.0
STATUS_WRITE_SECONDS = 2.0
# The minute clock runs after the minute's bars had their chance to arrive.
MINUTE_CLOCK_OFFSET = timedelta(minutes=1, seconds=5)


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
        self.ledger = Ledger.open(state_dir / "ledger.sqlite")
        self.sessions = SessionBook([])
        self.runners: dict[str, StrategyRunner] = {}
        self.brokers: dict[str, AlpacaBroker] = {}
        self.trade_streams: dict[str, SupervisedStream] = {}
        self.bar_streams: dict[str, SupervisedStream] = {}
        self.scheduler = JobScheduler(clock)
        self.jobs = SessionJobs(
            scheduler=self.scheduler,
            clock=clock,
            runners=self.runners,
            sessions=lambda: self.sessions,
            fetch=self._fetch,
            after_close=self._after_close,
        )
        self.ready = asyncio.Event()
        self.stopped = asyncio.Event()
        self._reconciled: dict[str, asyncio.Event] = {}
        self._endpoints = endpoints
        self._stop_requested = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.mode = "paper"  # set by the runtime that built this daemon
        self.metrics = Metrics()
        self.metrics_server: MetricsServer | None = None
        self.control = ControlChannel(state_dir / "ledger.sqlite")
        self._position_suspects: dict[str, set[tuple[str, str]]] = {}
        self._position_reported: set[tuple[str, str]] = set()
        self.sink = EventSink(self.ledger, log_dir, self._notify_strategy, self.metrics)
        for name, endpoint in endpoints.items():
            self.brokers[name] = AlpacaBroker(
                account=name,
                key=endpoint.key,
                secret=endpoint.secret,
                paper=endpoint.paper,
                trading_url=endpoint.trading_url,
                data_url=endpoint.data_url,
                feed=config.feed,
            )
        routing = {}
        for name, strategy in self._enabled().items():
            params: Any = strategy.params
            routing[name] = StrategyRouting(
                account=strategy.account,
                limits=params.risk,
                max_spread_pct=getattr(params, "max_spread_pct", None),
                min_liquidity_shares=getattr(params, "min_liquidity_shares", None),
            )
        self.router = OrderRouter(
            ledger=self.ledger,
            brokers=self.brokers,
            sink=self.sink,
            clock=clock,
            routing=routing,
        )
        self.commands = OperatorCommands(
            control=self.control,
            ledger=self.ledger,
            router=self.router,
            running=lambda: sorted(self.runners),
        )

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
        rebuild_all(self.ledger, self.log_dir)
        for name, endpoint in self._endpoints.items():
            self._reconciled[name] = asyncio.Event()
            stream = trade_updates_stream(
                account=name,
                key=endpoint.key,
                secret=endpoint.secret,
                paper=endpoint.paper,
                url=endpoint.trading_ws,
                on_event=self.sink.apply,
                on_connected=self._reconcile_callback(name),
            )
            self.trade_streams[name] = stream
            stream.start()
        for name, event in self._reconciled.items():
            try:
                await asyncio.wait_for(event.wait(), timeout=60)
            except TimeoutError:
                raise BrokerError(
                    f"account {name}: trade stream or first reconciliation not done in 60 s"
                ) from None
        await self._load_sessions()
        for name, strategy in self._enabled().items():
            await self._start_strategy(name, strategy)
        self._start_bar_streams()
        self._tasks.append(spawn(self._watch_unacked(), name="unacked-orders"))
        self._tasks.append(spawn(self.commands.poll_forever(), name="control"))
        self._tasks.append(spawn(self._status_loop(), name="status"))
        self._tasks.append(spawn(self.metrics.probe_loop_lag(), name="loop-lag"))
        if self.config.metrics_port is not None:
            self.metrics.on_scrape(self._refresh_metrics)
            self.metrics_server = MetricsServer(self.metrics, self.health, self.config.metrics_port)
            await self.metrics_server.start()
        if "bear_trap" in self.runners:
            self._tasks.append(
                spawn(self._minute_clock(self.runners["bear_trap"]), name="minute-clock")
            )
        self.scheduler.start()
        self.jobs.plan()
        self.ready.set()
        log.info("READY: %s", self.status_line())

    async def _load_sessions(self) -> None:
        start, end = calendar_window(self.clock.now())
        broker = next(iter(self.brokers.values()))
        market = await broker.market_clock()
        log.info(
            "broker clock: market %s, next open %s, next close %s",
            "OPEN" if market.is_open else "closed",
            market.next_open.astimezone(NEW_YORK).strftime("%Y-%m-%d %H:%M ET"),
            market.next_close.astimezone(NEW_YORK).strftime("%Y-%m-%d %H:%M ET"),
        )
        self.sessions = SessionBook(await broker.sessions(start, end))
        log.info("calendar: %d sessions %s", len(self.sessions), self.sessions.span())

    async def _start_strategy(self, name: str, config: StrategyConfig) -> None:
        cls = strategy_class(name)
        params: Any = config.params
        symbols = _symbols_of(name, params)
        runner = StrategyRunner(
            name=name,
            strategy=cls(params),
            symbols=symbols,
            ledger=self.ledger,
            router=self.router,
            clock=self.clock,
            sessions=lambda: self.sessions,
            execution_delay=timedelta(seconds=getattr(params, "execution_delay_seconds", 0)),
        )
        restored = runner.restore(lambda state: cls(params, state=state))
        self.runners[name] = runner
        fed = await self._warm(runner)
        log.info(
            "strategy %s: %s, %d symbols, %d warm-up bars",
            name,
            "restored from the ledger" if restored else "fresh",
            len(symbols),
            fed,
        )

    async def _warm(self, runner: StrategyRunner) -> int:
        """History the strategy has not seen, up to the last completed bar, as warm-up."""
        now = self.clock.now()
        lookback = {"1Day": timedelta(days=420), "1Hour": timedelta(days=60)}.get(
            runner.timeframe, timedelta(days=4)
        )
        bars = await self._fetch(runner, now - lookback, now)
        catch_up = self.jobs.catch_up_session() if runner.timeframe == "1Day" else None
        if catch_up is not None:
            bars = [b for b in bars if b.t.astimezone(NEW_YORK).date() < catch_up.date]
        return await runner.warmup(bars)

    async def _fetch(self, runner: StrategyRunner, start: datetime, end: datetime) -> list[Bar]:
        broker = self.brokers[self.config.strategies[runner.name].account]
        if not runner.symbols or runner.symbols == ["*"]:
            return []
        try:
            found = await broker.bars(runner.symbols, runner.timeframe, start, end)  # type: ignore[arg-type]
        except BrokerError as exc:
            log.warning("bars for %s unavailable: %s", runner.name, exc)
            return []
        return [b for rows in found.values() for b in rows]

    def _start_bar_streams(self) -> None:
        runner = self.runners.get("bear_trap")
        if runner is None:
            return
        account = self.config.strategies["bear_trap"].account
        endpoint = self._endpoints[account]
        first_connect = [True]

        async def on_connected() -> None:
            if first_connect[0]:
                first_connect[0] = False
                return
            fed = await self._warm(runner)  # bars missed while disconnected
            log.warning("bar stream reconnected: %d missed bars fed as warm-up", fed)

        stream = bar_stream(
            account=account,
            key=endpoint.key,
            secret=endpoint.secret,
            feed=self.config.feed,
            url=endpoint.data_ws,
            symbols=runner.symbols,
            on_bar=lambda bar: runner.on_bars([bar]),
            on_connected=on_connected,
        )
        self.bar_streams[account] = stream
        stream.start()

    async def _minute_clock(self, runner: StrategyRunner) -> None:
        """A few seconds after each minute: time-driven exits for symbols with no bar."""
        while True:
            now = self.clock.now()
            await self.clock.sleep_until(now.replace(second=0, microsecond=0) + MINUTE_CLOCK_OFFSET)
            await runner.on_clock()

    async def _watch_unacked(self) -> None:
        """Every few wall seconds: orders with no broker answer are looked up by
        client_order_id (operational timing, not business timing: wall sleep)."""
        while True:
            await asyncio.sleep(UNACKED_CHECK_SECONDS)
            for account in self.brokers:
                try:
                    count = await self.router.resolve_unacked(account)
                except BrokerError as exc:
                    log.warning("unacked-order check of %s failed: %s", account, exc)
                    continue
                if count:
                    log.warning("%s: %d unacknowledged orders looked up", account, count)

    async def _status_loop(self) -> None:
        """Every 2 s (wall): the snapshot `magellan status` reads. Every ~10 s: the broker's
        positions, for prices and for the position watch."""
        prices: dict[str, str] = {}
        for tick in itertools.count():
            if tick % 5 == 0:
                for account in self.brokers:
                    try:
                        positions = await self.router.broker_positions(account)
                    except BrokerError as exc:
                        log.warning("positions of %s unreadable: %s", account, exc)
                        continue
                    prices.update(
                        {p.symbol: str(p.current_price) for p in positions if p.current_price}
                    )
                    self._watch_positions(account, positions)
            self.control.write_status(self.status_snapshot(prices))
            sdnotify.status(f"{self.mode}, {len(self.runners)} strategies: {self.status_line()}")
            await asyncio.sleep(STATUS_WRITE_SECONDS)

    def _watch_positions(self, account: str, positions: list[BrokerPosition]) -> None:
        """Positions changed outside Magellan (a manual trade, a corporate action) are
        reported while the daemon runs, not only at the next reconnect. A difference must be
        seen on two reads in a row: a fill is briefly at the broker before its event is here."""
        found = {
            (d.symbol, d.detail): d
            for d in position_diff(account, self.ledger.net_positions(account), positions)
        }
        seen_before = self._position_suspects.get(account, set())
        for key, discrepancy in found.items():
            if key in seen_before and key not in self._position_reported:
                self._position_reported.add(key)
                self.metrics.discrepancies.inc()
                self.ledger.record_discrepancy(discrepancy, self.clock.now())
                log.warning(
                    "DISCREPANCY %s %s %s: %s",
                    discrepancy.kind,
                    account,
                    discrepancy.symbol,
                    discrepancy.detail,
                    extra={"fields": {"SYMBOL": discrepancy.symbol, "EVENT": "discrepancy"}},
                )
        self._position_suspects[account] = set(found)

    def status_snapshot(self, prices: dict[str, str]) -> dict[str, Any]:
        """What the operator's `status` shows about the running process."""
        last_fill = self.ledger.execute_read("SELECT MAX(ts) AS ts FROM fills")[0]["ts"]
        return {
            "mode": self.mode,
            "pid": os.getpid(),
            "ready": self.ready.is_set(),
            "virtual_now": self.clock.now().isoformat(),
            "streams": {a: s.stats.connected for a, s in self.trade_streams.items()},
            "next_jobs": [
                {"name": j.name, "when": j.when.isoformat()} for j in self.scheduler.planned()[:5]
            ],
            "prices": prices,
            "last_fill": last_fill,
            "strategies": {n: {"enabled": n in self.runners} for n in self.config.strategies},
        }

    def health(self) -> tuple[bool, str]:
        """Healthy = every trade stream connected and the event loop responsive."""
        down = [a for a, s in self.trade_streams.items() if not s.stats.connected]
        if down:
            return False, f"trade stream down: {', '.join(down)}"
        lag = self.metrics.last_loop_lag
        if lag > HEALTHY_LAG_SECONDS:
            return False, f"event loop lagging {lag:.1f}s"
        return True, "ok"

    def _refresh_metrics(self) -> None:
        m = self.metrics
        m.router_queue.set(self.router.stats.in_flight)
        while self.router.stats.submit_seconds:
            m.submit_latency.observe(self.router.stats.submit_seconds.popleft())
        for account, broker in self.brokers.items():
            m.throttle_wait.labels(account).set(broker.stats.throttle_wait_seconds)
        for stream in (*self.trade_streams.values(), *self.bar_streams.values()):
            m.stream_connected.labels(stream.name).set(1 if stream.stats.connected else 0)
            m.stream_reconnects.labels(stream.name).set(max(0, stream.stats.connects - 1))
        now = self.clock.now()
        for runner in self.runners.values():
            if runner.last_bar:
                end = max(runner.last_bar.values()) + TIMEFRAME_LENGTH[runner.timeframe]
                m.bar_age.labels(runner.timeframe).set((now - end).total_seconds())
            today = now.astimezone(NEW_YORK).date()
            m.pnl.labels(runner.name).set(float(self.ledger.realized_on(runner.name, today)))

    # -- broker events and reconciliation ------------------------------------------------

    async def _notify_strategy(self, strategy: str, update: OrderUpdate) -> None:
        runner = self.runners.get(strategy)
        if runner is not None:
            await runner.on_order_update(update)
        if update.kind == "fill" and update.side == "sell":
            self.check_emergency(strategy)

    def check_emergency(self, strategy: str) -> None:
        """Evaluate the strategy's emergency-stop conditions over its closed trades; a trip
        halts it as ``magellan halt`` would (exits keep working) and says so loudly."""
        config = self.config.strategies.get(strategy)
        if config is None or self.ledger.halted(strategy):
            return
        trades = [
            ClosedTrade(
                symbol=t["symbol"],
                entry_time=parse_iso(t["entry_time"]),
                exit_time=parse_iso(t["exit_time"]),
                qty=int(Decimal(t["qty"])),
                entry_price=float(t["entry_price"]),
                exit_price=float(t["exit_price"]),
                pnl=float(t["pnl"]),
                session_date=date.fromisoformat(t["session_date"]),
            )
            for t in self.ledger.closed_trades(strategy)
        ]
        reason = evaluate_emergency(config.params.emergency, trades)  # type: ignore[attr-defined]
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

    def _reconcile_callback(self, account: str) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            try:
                await self.reconcile(account)
            except BrokerError as exc:
                log.error("reconciliation of %s failed: %s", account, exc)
                return
            self._reconciled[account].set()

        return run

    async def reconcile(self, account: str) -> int:
        """Diff ledger and broker for one account; apply the events; report discrepancies."""
        now = self.clock.now()
        open_orders = self.ledger.orders(account=account, open_only=True)
        since = min([o.created_at for o in open_orders] + [now - RECONCILE_LOOKBACK])
        snapshot = await self.router.snapshot(account, since - timedelta(minutes=1))
        orders = [
            o
            for o in self.ledger.orders(account=account)
            if o.created_at >= since - timedelta(days=1)
        ]
        result = reconcile(orders, self.ledger.net_positions(account), snapshot, now)
        for event in result.events:
            await self.sink.apply(event)
        for discrepancy in result.discrepancies:
            self.metrics.discrepancies.inc()
            self.ledger.record_discrepancy(discrepancy, now)
            log.warning(
                "DISCREPANCY %s %s %s: %s",
                discrepancy.kind,
                discrepancy.account,
                discrepancy.symbol,
                discrepancy.detail,
                extra={"fields": {"SYMBOL": discrepancy.symbol, "EVENT": "discrepancy"}},
            )
        resent = await self.router.resend_not_found(account)
        log.info(
            "reconciled %s: %d events applied, %d discrepancies, %d orders re-sent",
            account,
            len(result.events),
            len(result.discrepancies),
            resent,
        )
        return len(result.events)

    async def _after_close(self, session: Session) -> None:
        """After each close: emergency stops, the calendar refreshed when it runs short."""
        for name in self.runners:
            self.check_emergency(name)
        last = self.sessions.last_date()
        if last is not None and last - session.date < timedelta(days=20):
            await self._load_sessions()
        log.info("session %s closed: %s", session.date, self.status_line())

    # -- status and shutdown -------------------------------------------------------------

    def status_line(self) -> str:
        """One line a person reads: positions, next job, streams."""
        positions = self.ledger.positions()
        nxt = self.scheduler.planned()
        streams = all(s.stats.connected for s in self.trade_streams.values())
        upcoming = (
            f"{nxt[0].name} at {nxt[0].when.astimezone(NEW_YORK):%Y-%m-%d %H:%M} ET"
            if nxt
            else "none"
        )
        return (
            f"{len(positions)} open positions, next job: {upcoming}, "
            f"trade stream {'connected' if streams else 'DOWN'}"
        )

    def request_stop(self) -> None:
        """Ask the daemon to drain and stop (signal handlers call this)."""
        self._stop_requested.set()

    async def wait_stop_requested(self) -> None:
        """Return when a stop was requested."""
        await self._stop_requested.wait()

    async def stop(self, drain_seconds: float = 15.0) -> None:
        """Drain and tear down in the reverse order of startup."""
        await self.scheduler.shutdown()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        deadline = asyncio.get_running_loop().time() + drain_seconds
        while self.router.stats.in_flight and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        for stream in self.bar_streams.values():
            await stream.stop()
        for stream in self.trade_streams.values():
            await stream.stop()
        if self.metrics_server is not None:
            await self.metrics_server.stop()
        for broker in self.brokers.values():
            broker.close()
        self.control.close()
        for runner in self.runners.values():
            self.ledger.save_strategy_state(runner.name, runner.snapshot(), self.clock.now())
        self.ledger.close()
        self.stopped.set()


def _symbols_of(name: str, params: Any) -> list[str]:
    if name == "bear_trap":
        return list(params.universe)
    return list(params.symbols)
