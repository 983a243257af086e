"""The daemon's order stack against the simulator over loopback, for router-level tests.

Real parts only: the simulator's HTTP and websocket server, the unmodified alpaca-py clients
(through ``AlpacaBroker`` and the supervised trade-updates stream), a real SQLite ledger, the
event sink, the order watch, the order path and the router. What a strategy would be told is
collected in ``updates`` instead of going to a strategy.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from magellan_core.clock import VirtualClock
from magellan_daemon.adapters.alpaca.rest import AlpacaBroker
from magellan_daemon.adapters.alpaca.stream import SupervisedStream, trade_updates_stream
from magellan_daemon.domain import ClientOrderId
from magellan_daemon.errors import BrokerFatal
from magellan_daemon.execution.events import EventSink
from magellan_daemon.execution.order_path import OrderPath
from magellan_daemon.execution.order_watch import OrderWatch
from magellan_daemon.execution.router import OrderRouter, StrategyRouting
from magellan_daemon.ledger.store import Ledger, OrderRow
from magellan_daemon.ledger.tradelog import TradeLogWriter
from magellan_daemon.reconciliation.recovery import Recovery
from magellan_daemon.tasks import spawn
from magellan_sim.exchange.exchange import Exchange
from magellan_sim.market.calendar import SessionCalendar
from magellan_sim.market.market import MarketData
from magellan_sim.server.server import SimServer
from strategies.api.model import OrderUpdate
from strategies.api.params import RiskLimits

KEY, SECRET = "router-key", "router-secret"
LIMITS = RiskLimits(
    max_open_positions=5, max_position_dollars=50_000, max_daily_loss_dollars=10_000
)
WAIT = 20.0  # wall seconds: a safety net only


class Stack:
    """Simulator + order stack on one virtual clock."""

    def __init__(
        self,
        server: SimServer,
        ledger: Ledger,
        clock: VirtualClock,
        timeout: float,
        routing: dict[str, StrategyRouting],
    ) -> None:
        self.server = server
        self.exchange = server.exchange
        self.clock = clock
        self.ledger = ledger
        self.updates: list[OrderUpdate] = []
        self.fatal: list[BrokerFatal] = []
        self.watch = OrderWatch()
        self.trade_log = TradeLogWriter(ledger, ledger.path.parent / "trades")
        self.sink = EventSink(
            ledger,
            self.trade_log,
            lambda strategy, update: self.updates.append(update),
            self.watch,
            clock.now,
        )
        self.broker = AlpacaBroker(
            account="main",
            key=KEY,
            secret=SECRET,
            paper=True,
            trading_url=server.url,
            data_url=server.url,
            timeout_seconds=timeout,
        )
        self.path = OrderPath(
            ledger=ledger,
            brokers={"main": self.broker},
            sink=self.sink,
            watch=self.watch,
            clock=clock,
            backoff_seconds=0.01,
            confirm_seconds=5.0,
            poll_seconds=0.2,
        )
        self.router = OrderRouter(
            ledger=ledger,
            path=self.path,
            sink=self.sink,
            clock=clock,
            routing=routing,
            on_fatal=self.fatal.append,
        )
        self.recovery = Recovery(
            ledger=ledger,
            path=self.path,
            sink=self.sink,
            clock=clock,
            accounts=["main"],
            reconnect=self._reconnect,
        )
        self.stream: SupervisedStream | None = None
        self._writer: asyncio.Task[None] | None = None

    async def _reconnect(self, account: str) -> None:
        if self.stream is not None:
            await self.stream.reconnect()

    async def start_stream(self) -> None:
        """The real trade-updates stream into the sink (as the daemon runs it)."""
        self.stream = trade_updates_stream(
            account="main",
            key=KEY,
            secret=SECRET,
            paper=True,
            url=self.server.trading_ws_url,
            on_event=self.sink.apply,
            on_connected=lambda: self.recovery.schedule("main"),
        )
        self.stream.start()
        await asyncio.wait_for(self.server.wait_trade_listeners(KEY), WAIT)

    def broker_orders(self) -> list[dict[str, Any]]:
        """Every order of the account at the simulator, oldest first."""
        return self.exchange.orders.list_orders(KEY, status="all", limit=500, direction="asc")

    def broker_position(self, symbol: str) -> Decimal:
        """The account's position at the simulator."""
        return next(
            (
                Decimal(p["qty"])
                for p in self.exchange.accounts.list_positions(KEY)
                if p["symbol"] == symbol
            ),
            Decimal(0),
        )

    async def until(self, condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
        """Wait (wall ``timeout``, a safety net) until ``condition()`` holds."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while not condition():
            if loop.time() > end:
                raise AssertionError(f"timed out waiting for {what}")
            await asyncio.sleep(0.01)

    async def advance(self, seconds: float) -> None:
        """Move virtual time on by ``seconds`` and let the simulator process it."""
        self.clock.advance(seconds)
        await asyncio.wait_for(self.server.wait_processed(), WAIT)

    def order_row(
        self,
        cid: str,
        *,
        strategy: str = "bear_trap",
        symbol: str = "AMC",
        side: str = "buy",
        qty: int = 10,
        leg: str = "entry",
        signal_time: datetime | None = None,
        order_type: str = "market",
        stop_price: Decimal | None = None,
    ) -> OrderRow:
        """Write an order row as the router would before its POST."""
        now = self.clock.now()
        return self.ledger.create_order(
            client_order_id=ClientOrderId(cid),
            account="main",
            strategy=strategy,
            symbol=symbol,
            side=side,
            order_type=order_type,
            qty=Decimal(qty),
            stop_price=stop_price,
            time_in_force="gtc" if order_type == "stop" else "day",
            leg=leg,
            signal_time=signal_time or now,
            intent_id=None,
            replaces=None,
            now=now,
        )


@asynccontextmanager
async def order_stack(
    bars_dir: Path,
    tmp_path: Path,
    start: datetime,
    *,
    timeout: float = 5.0,
    stream: bool = True,
    routing: dict[str, StrategyRouting] | None = None,
    rate_limit: int = 200,
    **exchange_options: Any,
) -> AsyncIterator[Stack]:
    """A running stack; the simulator's exchange takes ``exchange_options`` (latencies...)."""
    clock = VirtualClock(start, speed=0)
    market = MarketData.from_dir(bars_dir, SessionCalendar())
    exchange = Exchange(clock, market, market.calendar, **exchange_options)
    server = SimServer(exchange, port=0, rate_limit=rate_limit)
    await server.start()
    ledger = Ledger.open(tmp_path / "ledger.sqlite")
    routes = routing or {
        "bear_trap": StrategyRouting(account="main", limits=LIMITS),
        "hourly_swing": StrategyRouting(account="main", limits=LIMITS),
        "daily_trend": StrategyRouting(account="main", limits=LIMITS),
    }
    stack = Stack(server, ledger, clock, timeout, routes)
    writer = spawn(stack.trade_log.run(), name="test-trade-log")
    try:
        if stream:
            await stack.start_stream()
        yield stack
    finally:
        await stack.router.drain(5)
        await stack.router.cancel_lanes()
        if stack.stream is not None:
            await stack.stream.stop()
        writer.cancel()
        stack.broker.close()
        ledger.close()
        await server.stop()
