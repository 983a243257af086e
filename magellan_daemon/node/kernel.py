"""The trading kernel: the parts ``magellan run`` and ``magellan backtest`` share, wired once.

The ledger, the trade log, the event sink (the one door for broker news) and the news it
hands each strategy's worker, the order path on the accounts' brokers, the router with
each strategy's routing, the position guard and the corporate-action watch. What differs
between live and backtest is given: where the ledger lives, the brokers (Alpaca over HTTP
or the simulator's exchange in process), the calendar, what else hears about order news,
and what a broker's refusal of our credentials does.

The runners are the kernel's too, but each caller builds them when it is ready
(``new_runner``): the daemon restores each strategy from its snapshot after the calendar
is loaded, the backtest starts them fresh.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Generic, TypeVar

from magellan_core.clock import Clock
from magellan_daemon.config.loading import StrategyConfig
from magellan_daemon.errors import BrokerFatal
from magellan_daemon.execution.events import EventSink
from magellan_daemon.execution.order_path import OrderPath
from magellan_daemon.execution.order_watch import OrderWatch
from magellan_daemon.execution.ports import Broker
from magellan_daemon.execution.position_guard import GuardedStrategy, PositionGuard
from magellan_daemon.execution.router import OrderRouter, StrategyRouting
from magellan_daemon.ledger.store import Ledger
from magellan_daemon.ledger.tradelog import TradeLogWriter
from magellan_daemon.observability.metrics import Metrics
from magellan_daemon.reconciliation.corporate_watch import CorporateActionWatch
from magellan_daemon.runtime.strategy_runner import StrategyRunner
from magellan_daemon.sessions import SessionBook
from strategies.api.model import OrderUpdate
from strategies.registry import descriptor

BrokerT = TypeVar("BrokerT", bound=Broker)


@dataclass(frozen=True, slots=True, kw_only=True)
class Kernel(Generic[BrokerT]):
    """The shared trading parts of one process (the bundle is fixed; the parts work)."""

    clock: Clock
    ledger: Ledger
    trade_log: TradeLogWriter
    watch: OrderWatch
    sink: EventSink
    brokers: Mapping[str, BrokerT]
    path: OrderPath[BrokerT]
    router: OrderRouter
    guard: PositionGuard
    corporate: CorporateActionWatch
    runners: dict[str, StrategyRunner]  # filled by the caller, in its own order
    strategies: Mapping[str, StrategyConfig]
    accounts: Mapping[str, str]  # strategy -> the account it trades on
    sessions: Callable[[], SessionBook]

    def new_runner(self, name: str, *, backtest: bool = False) -> StrategyRunner:
        """A runner for strategy ``name`` with a fresh strategy, not yet in ``runners`` (the
        caller restores it first, if it restores, then adds it). A ``backtest`` runner saves
        symbols with only quiet bars at the end, not every few minutes, and stores only the
        evaluations that decided something (nobody reads a backtest's "why not" of a bar)."""
        config = self.strategies[name]
        return StrategyRunner(
            name=name,
            strategy=descriptor(name).build(config.params, None, explain_skips=False),
            symbols=config.spec.symbols,
            ledger=self.ledger,
            router=self.router,
            clock=self.clock,
            sessions=self.sessions,
            execution_delay=config.spec.execution_delay,
            per_symbol_state=config.spec.per_symbol_state,
            backtest=backtest,
        )


def build_kernel(
    *,
    clock: Clock,
    ledger_path: Path,
    log_dir: Path,
    strategies: Mapping[str, StrategyConfig],
    brokers: Callable[[EventSink], Mapping[str, BrokerT]],
    sessions: Callable[[], SessionBook],
    on_fatal: Callable[[BrokerFatal], None],
    close_margin: timedelta,
    account: str | None = None,
    after_update: Callable[[str, OrderUpdate], None] | None = None,
    metrics: Metrics | None = None,
    confirm_positions: Callable[[], Awaitable[object]] | None = None,
) -> Kernel[BrokerT]:
    """The kernel for ``strategies`` (the ones that run).

    ``brokers`` builds the accounts' brokers once the sink exists (an in-process broker
    hands its trade updates straight to it); ``account``, when given, is the one account
    every strategy trades on (a backtest's), else each strategy's own. ``after_update`` hears
    each order update after the strategy's worker has it queued; ``on_fatal`` is told when
    the broker refuses our credentials. ``confirm_positions`` asks the broker for what the
    ledger may not know yet (the live daemon's open-order poll): the position guard asks it
    before it calls a position held past the close.
    """
    ledger = Ledger.open(ledger_path)
    runners: dict[str, StrategyRunner] = {}

    def post_update(strategy: str, update: OrderUpdate) -> None:
        """The sink's news for a strategy: queued for its worker (never waits)."""
        runner = runners.get(strategy)
        if runner is not None:
            runner.post_update(update)
        if after_update is not None:
            after_update(strategy, update)

    watch = OrderWatch()
    trade_log = TradeLogWriter(ledger, log_dir)
    sink = EventSink(ledger, trade_log, post_update, watch, clock.now, metrics)
    accounts_brokers = brokers(sink)
    path = OrderPath(ledger=ledger, brokers=accounts_brokers, sink=sink, watch=watch, clock=clock)
    accounts = {name: account or config.account for name, config in strategies.items()}
    routing = {
        name: StrategyRouting(
            account=accounts[name],
            limits=config.spec.risk,
            max_spread_pct=config.spec.routing.max_spread_pct,
            min_liquidity_shares=config.spec.routing.min_liquidity_shares,
        )
        for name, config in strategies.items()
    }
    router = OrderRouter(
        ledger=ledger, path=path, sink=sink, clock=clock, routing=routing, on_fatal=on_fatal
    )
    guard = PositionGuard(
        ledger=ledger,
        router=router,
        clock=clock,
        sessions=sessions,
        strategies=[
            GuardedStrategy(
                name=name,
                protective_stop=config.spec.protective_stop,
                intraday=config.spec.horizon == "intraday",
            )
            for name, config in strategies.items()
        ],
        close_margin=close_margin,
        confirm=confirm_positions,
    )
    corporate = CorporateActionWatch(
        ledger=ledger,
        path=path,
        clock=clock,
        runners=runners,
        watched=lambda: watched_symbols(runners, strategies, accounts),
    )
    return Kernel(
        clock=clock,
        ledger=ledger,
        trade_log=trade_log,
        watch=watch,
        sink=sink,
        brokers=accounts_brokers,
        path=path,
        router=router,
        guard=guard,
        corporate=corporate,
        runners=runners,
        strategies=strategies,
        accounts=accounts,
        sessions=sessions,
    )


def watched_symbols(
    runners: Mapping[str, StrategyRunner],
    strategies: Mapping[str, StrategyConfig],
    accounts: Mapping[str, str],
) -> dict[str, set[str]]:
    """Per account, the symbols its running strategies watch (a whole-market watch adds
    none: its held symbols come from the ledger)."""
    out: dict[str, set[str]] = {}
    for name in runners:
        spec = strategies[name].spec
        symbols = out.setdefault(accounts[name], set())
        if not spec.whole_market:
            symbols.update(spec.symbols)
    return out
