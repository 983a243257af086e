"""The daemon's trading parts assembled on an in-process exchange (no HTTP, no sockets).

The same kernel as ``magellan run`` (``node.kernel``: ``StrategyRunner``, ``OrderRouter`` with
its gates, sizing and lanes, ``OrderPath``, event sink, position guard and ledger); the
broker is ``InProcessBroker`` over the simulator's ``Exchange`` on a stepped
``VirtualClock``. The ledger lives in memory: a backtest has no
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
from magellan_daemon.execution.position_guard import PositionGuard
from magellan_daemon.execution.router import OrderRouter
from magellan_daemon.ledger.store import Ledger
from magellan_daemon.node.kernel import build_kernel
from magellan_daemon.reconciliation.corporate_watch import CorporateActionWatch
from magellan_daemon.runtime.strategy_runner import StrategyRunner
from magellan_daemon.sessions import SessionBook
from magellan_sim.exchange.exchange import Exchange
from magellan_sim.market.calendar import SessionCalendar
from magellan_sim.market.market import MarketData
from strategies.api.session import Session

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
    book = _session_book(calendar)
    fatal: list[BrokerFatal] = []
    kernel = build_kernel(
        clock=clock,
        ledger_path=Path(":memory:"),
        log_dir=Path("/nonexistent"),  # the trade log is marked, never written
        strategies=strategies,
        brokers=lambda sink: {ACCOUNT: InProcessBroker(exchange, ACCOUNT, sink.apply)},
        sessions=lambda: book,
        on_fatal=fatal.append,
        close_margin=close_margin,
        account=ACCOUNT,
    )
    for name in strategies:
        # No restart to rebuild from: the decided symbols are still saved before the router
        # sees their intents (the daemon's order), the quiet ones once at the end of the run.
        kernel.runners[name] = kernel.new_runner(name, backtest=True)
    return Stack(
        clock=clock,
        exchange=exchange,
        ledger=kernel.ledger,
        router=kernel.router,
        sessions=book,
        runners=kernel.runners,
        fatal=fatal,
        corporate=kernel.corporate if actions else None,
        actions=actions,
        splits=SplitTable(actions),
        guard=kernel.guard,
    )


def _session_book(calendar: SessionCalendar) -> SessionBook:
    sessions = calendar.sessions(calendar.first_date, calendar.last_date)
    return SessionBook([Session(date=s.date, open=s.open, close=s.close) for s in sessions])
