"""``OrderRouter``: the face of the router the rest of the daemon uses. It builds the lanes
and the decisions around one ``RouteContext`` and puts each intent on its lane."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from magellan_core.clock import Clock
from magellan_daemon.errors import BrokerFatal
from magellan_daemon.execution.events import EventSink
from magellan_daemon.execution.order_path import OrderPath
from magellan_daemon.execution.router.context import (
    FLATTEN_LEG,
    RouteContext,
    StrategyRouting,
    Work,
)
from magellan_daemon.execution.router.dispatch import Dispatch
from magellan_daemon.execution.router.entries import Entries
from magellan_daemon.execution.router.flatten import Outcome, summed, symbols_to_flatten
from magellan_daemon.execution.router.lanes import Lanes, LaneStats
from magellan_daemon.ledger.store import Ledger
from strategies.api.model import Intent


@dataclass
class RouterStats(LaneStats):
    """Counters for the health line and metrics (kept by the router's lanes)."""


class OrderRouter:
    """Routes intents to the order path of each strategy's account."""

    def __init__(
        self,
        *,
        ledger: Ledger,
        path: OrderPath,
        sink: EventSink,
        clock: Clock,
        routing: Mapping[str, StrategyRouting],
        on_fatal: Callable[[BrokerFatal], None],
    ) -> None:
        self._ctx = RouteContext(ledger=ledger, path=path, sink=sink, clock=clock, routing=routing)
        self._entries = Entries(self._ctx)
        self.stats = RouterStats()
        self._lanes = Lanes(Dispatch(self._ctx, self._entries, on_fatal), self.stats)

    def keep_accounts_in_memory(self) -> None:
        """Entries read the account from memory, kept from the broker news (the daemon);
        without this call every entry reads it by REST (``entries.py``)."""
        self._entries.keep_accounts_in_memory()

    def account_unknown(self, account: str) -> None:
        """The account's trade stream (re)connected: read its account again before an entry."""
        self._entries.account_unknown(account)

    @property
    def entries_stopped(self) -> str | None:
        """Why no entry goes out any more (the broker refused us for good), or None."""
        return self._entries.stopped

    @entries_stopped.setter
    def entries_stopped(self, reason: str | None) -> None:
        self._entries.stopped = reason

    def submit(
        self, intents: Sequence[Intent], intent_ids: Sequence[int | None] = ()
    ) -> list[asyncio.Future[object]]:
        """Queue intents on their lanes (never waits); each future completes when its
        intent was executed (or not), with the result of that step."""
        ids = list(intent_ids) or [None] * len(intents)
        return [
            self._enqueue(Work(intent.strategy, intent.symbol, intent, intent_id))
            for intent, intent_id in zip(intents, ids, strict=True)
        ]

    async def execute(
        self, intents: Sequence[Intent], intent_ids: Sequence[int | None] = ()
    ) -> None:
        """``submit`` and wait until every intent was executed."""
        await asyncio.gather(*self.submit(intents, intent_ids))

    def selling(self, strategy: str, symbol: str) -> int:
        """Shares the strategy's sells queued or being executed on the symbol's lane will
        sell (a flatten: all it holds): an exit on its way that has no order row yet."""
        total = 0
        for work in self._lanes.items((self._ctx.routing[strategy].account, symbol)):
            if work.strategy != strategy:
                continue
            if work.intent is None:
                total += int(self._ctx.ledger.position_qty(strategy, symbol))
            elif work.intent.action == "sell":
                total += work.intent.qty or 0
        return total

    def busy(self) -> bool:
        """True while any lane has work."""
        return self._lanes.busy()

    async def drain(self, timeout: float) -> bool:
        """Wait (wall ``timeout``) until every lane is idle; False if work was left."""
        return await self._lanes.drain(timeout)

    async def cancel_lanes(self) -> None:
        """Stop every lane now (shutdown, after ``drain``): what is left is not executed."""
        await self._lanes.cancel()

    def flatten_symbol(
        self, strategy: str, symbol: str, leg: str, *, time_in_force: str = "day"
    ) -> asyncio.Future[object]:
        """Queue a flatten of one symbol on its lane (the position guard's): its open orders
        cancelled, then a market sell of its shares with ``leg`` and ``time_in_force``."""
        return self._enqueue(Work(strategy, symbol, None, None, leg, time_in_force))

    async def flatten(self, strategy: str) -> Outcome:
        """Cancel the strategy's open orders and sell its own shares (never another
        strategy's), symbol by symbol on their lanes; returns what was done. Skips the
        gates, like every exit."""
        symbols = symbols_to_flatten(self._ctx.ledger, strategy)
        done = [self._enqueue(Work(strategy, s, None, None, FLATTEN_LEG)) for s in symbols]
        return summed(strategy, await asyncio.gather(*done))

    def _enqueue(self, work: Work) -> asyncio.Future[object]:
        return self._lanes.add((self._ctx.routing[work.strategy].account, work.symbol), work)
