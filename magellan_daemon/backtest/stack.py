"""The daemon's trading parts assembled on an in-process exchange (no HTTP, no sockets).

The same ``StrategyRunner``, ``OrderRouter`` (gates, sizing, lanes), ``OrderPath``, event sink
and ledger as ``magellan run``; the broker is ``InProcessBroker`` over the simulator's
``Exchange`` on a stepped ``VirtualClock``. The ledger lives in memory: a backtest has no
restart to survive, and per-commit fsyncs would cost more than the trading itself.

Corporate actions (the file's splits and dividends) are the exchange's, applied at 00:00
New York of each ex-date, and the daemon's own ``CorporateActionWatch`` reads them from the
in-process broker and applies them to the ledger and the strategies (``run.drive`` runs its
check right after, before any bar of the ex-date).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from magellan_core.clock import VirtualClock
from magellan_core.corporate_actions import CorporateAction, SplitTable
from magellan_daemon.adapters.inprocess import InProcessBroker
from magellan_daemon.config.loading import StrategyConfig
from magellan_daemon.errors import BrokerFatal
from magellan_daemon.execution.events import EventSink
from magellan_daemon.execution.order_path import OrderPath
from magellan_daemon.execution.order_watch import OrderWatch
from magellan_daemon.execution.position_guard import GuardedStrategy, PositionGuard
from magellan_daemon.execution.router import OrderRouter, StrategyRouting
from magellan_daemon.ledger.store import Ledger
from magellan_daemon.ledger.tradelog import TradeLogWriter
from magellan_daemon.reconciliation.corporate_watch import CorporateActionWatch
from magellan_daemon.runtime.strategy_runner import StrategyRunner
from magellan_daemon.sessions import SessionBook
from magellan_sim.exchange.exchange import Exchange
from magellan_sim.market.calendar import SessionCalendar
from magellan_sim.market.market import MarketData
from strategies.model import OrderUpdate
from strategies.registry import descriptor
from strategies.session import Session

ACCOUNT = "backtest"


@dataclass
class Stack:
    """Everything one backtest trades with."""

    clock: VirtualClock
    exchange: Exchange
    ledger: Ledger
    router: OrderRouter
    sessions: SessionBook
    runners: dict[str, StrategyRunner] = field(default_factory=dict)
    fatal: list[BrokerFatal] = field(default_factory=list)
    corporate: CorporateActionWatch | None = None
    actions: tuple[CorporateAction, ...] = ()
    splits: SplitTable = field(default_factory=lambda: SplitTable(()))
    guard: PositionGuard | None = None


def build_stack(
    bars_dir: Path,
    strategies: dict[str, StrategyConfig],
    clock: VirtualClock,
    calendar: SessionCalendar,
    cash: Decimal,
    actions: tuple[CorporateAction, ...] = (),
    close_margin: timedelta = timedelta(minutes=5),
) -> Stack:
    """The exchange on ``bars_dir`` (with the corporate ``actions``) and the daemon's parts
    for ``strategies``."""
    market = MarketData.from_dir(bars_dir, calendar)
    # The simulator as strict as the daemon's tests run it: cancels and replaces complete
    # after the broker's latency, at their own instants (``run.drive`` steps to them).
    exchange = Exchange(clock, market, calendar, cash=cash, corporate_actions=actions)
    ledger = Ledger.open(Path(":memory:"))
    runners: dict[str, StrategyRunner] = {}

    def post_update(strategy: str, update: OrderUpdate) -> None:
        runner = runners.get(strategy)
        if runner is not None:
            runner.post_update(update)

    watch = OrderWatch()
    trade_log = TradeLogWriter(ledger, Path("/nonexistent"))  # marked, never written
    sink = EventSink(ledger, trade_log, post_update, watch, clock.now)
    broker = InProcessBroker(exchange, ACCOUNT, sink.apply)
    path = OrderPath(
        ledger=ledger,
        brokers={ACCOUNT: broker},
        sink=sink,
        watch=watch,
        clock=clock,
    )
    routing = {
        name: StrategyRouting(
            account=ACCOUNT,
            limits=config.spec.risk,
            max_spread_pct=config.spec.routing.max_spread_pct,
            min_liquidity_shares=config.spec.routing.min_liquidity_shares,
        )
        for name, config in strategies.items()
    }
    fatal: list[BrokerFatal] = []
    router = OrderRouter(
        ledger=ledger, path=path, sink=sink, clock=clock, routing=routing, on_fatal=fatal.append
    )
    book = _session_book(calendar)
    for name, config in strategies.items():
        spec = config.spec
        runners[name] = StrategyRunner(
            name=name,
            strategy=descriptor(name).build(config.params, None, explain_skips=False),
            symbols=spec.symbols,
            ledger=ledger,
            router=router,
            clock=clock,
            sessions=lambda: book,
            execution_delay=spec.execution_delay,
            per_symbol_state=spec.per_symbol_state,
        )
    watched = {
        ACCOUNT: {s for c in strategies.values() if not c.spec.whole_market for s in c.spec.symbols}
    }
    corporate = CorporateActionWatch(
        ledger=ledger, path=path, clock=clock, runners=runners, watched=lambda: watched
    )
    guard = PositionGuard(
        ledger=ledger,
        router=router,
        clock=clock,
        sessions=lambda: book,
        strategies=[
            GuardedStrategy(
                name=name,
                protective_stop=config.spec.protective_stop,
                intraday=config.spec.horizon == "intraday",
            )
            for name, config in strategies.items()
        ],
        close_margin=close_margin,
    )
    return Stack(
        clock=clock,
        exchange=exchange,
        ledger=ledger,
        router=router,
        sessions=book,
        runners=runners,
        fatal=fatal,
        corporate=corporate if actions else None,
        actions=actions,
        splits=SplitTable(actions),
        guard=guard,
    )


def _session_book(calendar: SessionCalendar) -> SessionBook:
    sessions = calendar.sessions(calendar.first_date, calendar.last_date)
    return SessionBook([Session(date=s.date, open=s.open, close=s.close) for s in sessions])
