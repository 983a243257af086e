"""The daemon's exit machinery in one process on virtual time, for the model-based test.

Real parts only: Bear Trap in its ``StrategyRunner``, the ``OrderRouter``, the ``OrderPath``,
the event sink and an SQLite ledger (in memory, as ``magellan backtest`` keeps it), the
unacknowledged-order check of ``Recovery``, and the simulator's exchange core behind
``InProcessBroker``, whose answers the test chooses with the exchange's faults.

Time: the event loop's own time is virtual (``VirtualTimeLoop``): when nothing is ready it
jumps to its next timer and moves the ``VirtualClock`` there, instead of waiting. Every wait
of the daemon (a backoff, the order path's confirmation polls, the router's entry settle)
therefore takes the virtual time it asks for and no wall time, in the same order on every
run, and a test step is "what the daemon does until virtual time T".

The bars are chosen while the test runs (``GrowingMarket``): a bar is added to the tape
before the minute it completes, so the exchange matches against it then and never earlier.
"""

from __future__ import annotations

import asyncio
import contextlib
import selectors
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from magellan_core.clock import VirtualClock
from magellan_daemon.adapters.inprocess import InProcessBroker
from magellan_daemon.execution.events import EventSink
from magellan_daemon.execution.order_path import OrderPath
from magellan_daemon.execution.order_watch import OrderWatch
from magellan_daemon.execution.position_guard import GuardedStrategy, PositionGuard
from magellan_daemon.execution.router import OrderRouter, StrategyRouting
from magellan_daemon.ledger.store import Ledger
from magellan_daemon.ledger.tradelog import TradeLogWriter
from magellan_daemon.reconciliation.recovery import Recovery
from magellan_daemon.runtime.strategy_runner import StrategyRunner
from magellan_daemon.sessions import SessionBook
from magellan_sim.exchange.exchange import Exchange
from magellan_sim.exchange.orders import OPEN_STATUSES
from magellan_sim.market.calendar import SessionCalendar
from magellan_sim.market.market import MarketData, Series
from strategies.api.model import Bar, Intent, OrderUpdate
from strategies.api.session import Session
from strategies.bear_trap.strategy import BearTrap, BearTrapParams

ACCOUNT = "model"
SYMBOL = "AMC"
STRATEGY = "bear_trap"
MINUTE = timedelta(minutes=1)
# The daemon's minute clock ticks this long after each minute (app.MINUTE_CLOCK_OFFSET).
TICK_OFFSET = timedelta(seconds=5)
UNACKED_CHECK_SECONDS = 5.0  # app.UNACKED_CHECK_SECONDS


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop on virtual time (see the module docstring). ``idle()`` is a future that
    completes when nothing is ready at the current instant (before time moves on)."""

    def __init__(self, clock: VirtualClock) -> None:
        super().__init__()
        self._elapsed = 0.0
        self._origin = clock.now()
        self._clock = clock
        self._idle: list[asyncio.Future[None]] = []
        self._selector = _JumpingSelector(self, self._selector)  # type: ignore[has-type]

    def time(self) -> float:
        return self._elapsed

    def idle(self) -> asyncio.Future[None]:
        """Completes once every task has done what it can at the current instant."""
        waiter: asyncio.Future[None] = self.create_future()
        self._idle.append(waiter)
        return waiter

    def _nothing_ready(self, timeout: float | None) -> None:
        if self._idle:
            waiters, self._idle = self._idle, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
            return
        if timeout is None:
            raise RuntimeError("virtual-time loop: nothing ready and nothing scheduled")
        self._elapsed += timeout
        # microseconds, as datetimes have them: a timer due at a whole second lands on it
        self._clock.set(self._origin + timedelta(microseconds=round(self._elapsed * 1e6)))


class _JumpingSelector:
    """The loop's selector, never blocking: a wait becomes a jump of virtual time."""

    def __init__(self, loop: VirtualTimeLoop, inner: selectors.BaseSelector) -> None:
        self._loop = loop
        self._inner = inner

    def select(self, timeout: float | None = None) -> list[Any]:
        if timeout is None or timeout > 0:
            self._loop._nothing_ready(timeout)
        return self._inner.select(0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class GrowingMarket(MarketData):
    """One symbol's 1Min bars, added as the test chooses them (never before their minute)."""

    def __init__(self, symbol: str, calendar: SessionCalendar) -> None:
        self._bars: list[Bar] = []
        self._series: Series | None = None
        super().__init__([symbol], self._load, calendar)

    def _load(self, symbol: str, timeframe: str) -> Series | None:
        if timeframe != "1Min" or not self._bars:
            return None
        if self._series is None:
            columns = {
                "t": np.array([int(b.t.timestamp()) for b in self._bars], dtype=np.int64),
                "open": np.array([b.open for b in self._bars]),
                "high": np.array([b.high for b in self._bars]),
                "low": np.array([b.low for b in self._bars]),
                "close": np.array([b.close for b in self._bars]),
                "volume": np.array([b.volume for b in self._bars], dtype=np.int64),
                "trade_count": np.full(len(self._bars), -1, dtype=np.int64),
                "vwap": np.full(len(self._bars), np.nan),
            }
            self._series = Series(symbol, timeframe, columns, self.calendar)
        return self._series

    def series(self, symbol: str, timeframe: str) -> Series | None:
        return self._load(symbol, timeframe) if symbol in self._symbols else None

    def add(self, bar: Bar) -> None:
        """Append a bar later than every bar so far."""
        assert not self._bars or bar.t > self._bars[-1].t
        self._bars.append(bar)
        self._series = None


@dataclass
class BrokerMirror:
    """The account as the broker's trade updates tell it, kept on every update (the order
    dicts as sent, the position after each fill): what the invariants are judged on."""

    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    position: Decimal = Decimal(0)
    on_change: list[Callable[[], None]] = field(default_factory=list)

    def listen(self, key: str, message: dict[str, Any]) -> None:
        if key != ACCOUNT:
            return
        data = message["data"]
        order = data["order"]
        self.orders[order["id"]] = order
        if data["event"] in ("fill", "partial_fill"):
            self.position = Decimal(data["position_qty"])
        for callback in self.on_change:
            callback()

    def working_sells(self) -> list[dict[str, Any]]:
        """Sell orders that may still execute (a cancel or replace in flight included)."""
        return [
            o
            for o in self.orders.values()
            if o["side"] == "sell" and o["status"] in OPEN_STATUSES and o["status"] != "pending_new"
        ]


def remaining(order: dict[str, Any]) -> Decimal:
    return Decimal(order["qty"]) - Decimal(order["filled_qty"])


class RecordingRouter(OrderRouter):
    """The daemon's router, keeping a list of every intent handed to it (the ledger keeps
    one row per intent identity, so a repeated intent has no row of its own)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.intents: list[Intent] = []

    def submit(
        self, intents: Sequence[Intent], intent_ids: Sequence[int | None] = ()
    ) -> list[asyncio.Future[object]]:
        self.intents.extend(intents)
        return super().submit(intents, intent_ids)


class ExitStack:
    """Bear Trap and the daemon's order machinery on one symbol and one virtual day."""

    def __init__(self, day: date) -> None:
        calendar = SessionCalendar()
        sim_session = calendar.session(day)
        assert sim_session is not None, f"{day} is no trading day"
        self.session = Session(date=day, open=sim_session.open, close=sim_session.close)
        self.clock = VirtualClock(self.session.open, speed=0)
        self.loop = VirtualTimeLoop(self.clock)
        self.market = GrowingMarket(SYMBOL, calendar)
        self.exchange = Exchange(self.clock, self.market, calendar, cash=Decimal(100_000))
        self.mirror = BrokerMirror()
        self.exchange.add_listener(self.mirror.listen)
        self.ledger = Ledger.open(Path(":memory:"))
        self.updates: list[OrderUpdate] = []
        watch = OrderWatch()
        trade_log = TradeLogWriter(self.ledger, Path("/nonexistent"))  # marked, never written
        self.sink = EventSink(self.ledger, trade_log, self._post_update, watch, self.clock.now)
        broker = InProcessBroker(self.exchange, ACCOUNT, self.sink.apply)
        self.path = OrderPath(
            ledger=self.ledger,
            brokers={ACCOUNT: broker},  # type: ignore[dict-item]
            sink=self.sink,
            watch=watch,
            clock=self.clock,
        )
        self.params = BearTrapParams()
        routing = {
            STRATEGY: StrategyRouting(
                account=ACCOUNT,
                limits=self.params.risk,
                max_spread_pct=self.params.max_spread_pct,
                min_liquidity_shares=self.params.min_liquidity_shares,
            )
        }
        self.fatal: list[BaseException] = []
        self.router = RecordingRouter(
            ledger=self.ledger,
            path=self.path,
            sink=self.sink,
            clock=self.clock,
            routing=routing,
            on_fatal=self.fatal.append,
        )
        self.recovery = Recovery(
            ledger=self.ledger,
            path=self.path,
            sink=self.sink,
            clock=self.clock,
            accounts=[ACCOUNT],
            reconnect=_no_stream,
        )
        book = SessionBook(
            [
                Session(date=s.date, open=s.open, close=s.close)
                for s in calendar.sessions(day - timedelta(days=7), day + timedelta(days=7))
            ]
        )
        self.strategy = BearTrap(self.params, explain_skips=False)  # as the daemon builds it
        self.runner = StrategyRunner(
            name=STRATEGY,
            strategy=self.strategy,
            symbols=[SYMBOL],
            ledger=self.ledger,
            router=self.router,
            clock=self.clock,
            sessions=lambda: book,
            per_symbol_state=True,
        )
        # The daemon's position guard, checked as ``app`` does: after each minute's clock tick
        # and after order news.
        self.guard = PositionGuard(
            ledger=self.ledger,
            router=self.router,
            clock=self.clock,
            sessions=lambda: book,
            strategies=[GuardedStrategy(name=STRATEGY, protective_stop=True, intraday=True)],
            close_margin=timedelta(minutes=5),
        )
        self._guard_posted = False
        self._wake = asyncio.Event()
        self.exchange.add_schedule_listener(self._wake.set)
        self._tasks: list[asyncio.Task[Any]] = []
        self.next_minute = self.session.open + MINUTE  # the next minute to complete
        self.run(self._start())

    # -- running ---------------------------------------------------------------------------

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run ``coro`` on the virtual-time loop (a test step)."""
        return self.loop.run_until_complete(coro)

    async def _start(self) -> None:
        spawn = self.loop.create_task
        self._tasks = [
            spawn(self.runner.run(), name="runner"),
            spawn(self._broker_answers(), name="broker-answers"),
            spawn(self._unacked_check(), name="unacked-orders"),
        ]

    async def _unacked_check(self) -> None:
        """The daemon's unacknowledged-order check (``Recovery.resolve_unacked`` every 5 s,
        as ``app`` runs it). Its ledger read is skipped until an order's answer was ever
        lost (``OrderPath.stats.unknown``): before that no order can wait for a lookup (a
        row written before its POST is in flight until the answer), so the check would
        look at nothing, and the read costs more than the rest of a quiet minute."""
        while True:
            await asyncio.sleep(UNACKED_CHECK_SECONDS)
            if self.path.stats.unknown:
                await self.recovery.resolve_unacked(ACCOUNT)

    async def day_over(self) -> None:
        """Nothing is held or open and no plan is left: no bar can change anything before
        the close. The unacknowledged-order check, which has nothing to look up, stops
        here, so the rest of the day is one jump of time."""
        task = self._tasks.pop()
        assert task.get_name() == "unacked-orders"
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    def close(self) -> None:
        """Stop every task and close the loop and the ledger (once)."""
        if self.loop.is_closed():
            return
        for task in self._tasks:
            task.cancel()
        self.run(self._stop())
        self.ledger.close()
        self.loop.close()

    async def _stop(self) -> None:
        await self.router.cancel_lanes()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _broker_answers(self) -> None:
        """Cancels and replaces in flight complete at their own instants (the exchange's
        latency, or a held one): the simulator's publisher does this over HTTP."""
        while True:
            due = self.exchange.next_due()
            self._wake.clear()
            wait = None if due is None else max(0.0, (due - self.clock.now()).total_seconds())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            self.exchange.advance()

    def _post_update(self, strategy: str, update: OrderUpdate) -> None:
        self.updates.append(update)
        self.runner.post_update(update)
        if not self._guard_posted:
            self._guard_posted = True
            self.loop.call_soon(self._guard_check)

    def _guard_check(self) -> None:
        self._guard_posted = False
        self.guard.check()

    async def settle(self) -> None:
        """Until everything has done what it can at this instant."""
        await self.loop.idle()

    async def until(self, when: datetime) -> None:
        """Let the daemon work until virtual time ``when``."""
        seconds = (when - self.clock.now()).total_seconds()
        if seconds > 0:
            await asyncio.sleep(seconds)
        await self.settle()

    async def minute(self, bar: Bar | None) -> None:
        """The next minute: its bar (if one traded) completes, the exchange matches it, the
        bar reaches the strategy, then the minute clock ticks."""
        end = self.next_minute
        if bar is not None:
            assert bar.t + MINUTE == end
            self.market.add(bar)
            self.exchange.tape.forget()  # the market gained a bar: drop the cached days
        await self.until(end)
        self.exchange.advance()
        await self.settle()
        if bar is not None:
            self.runner.post_bars([bar])
            await self.settle()
        await self.until(end + TICK_OFFSET)
        self.runner.post_clock(self.clock.now())
        await self.settle()
        self.guard.check()
        await self.settle()
        self.next_minute = end + MINUTE

    def bar(self, o: float, h: float, low: float, c: float, v: float = 1000.0) -> Bar:
        """The bar of the next minute."""
        return Bar(
            symbol=SYMBOL,
            timeframe="1Min",
            t=self.next_minute - MINUTE,
            open=o,
            high=h,
            low=low,
            close=c,
            volume=v,
        )


async def _no_stream(account: str) -> None:
    """No stream to reconnect: the in-process broker hands every update over at once."""


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)
