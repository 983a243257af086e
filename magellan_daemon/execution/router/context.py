"""What the router's decisions share: the work item, one small context object (ledger, order
path, event sink, clock, routing) and the ledger reads the decisions have in common."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from magellan_core.clock import Clock
from magellan_daemon.domain import ClientOrderId, OrderStatus, client_order_id
from magellan_daemon.execution.events import EventSink
from magellan_daemon.execution.order_path import OrderPath
from magellan_daemon.execution.router.lanes import Ticket
from magellan_daemon.ledger.store import Ledger, OrderRow
from strategies.api.model import PROTECTIVE_STOP_LEG, Intent
from strategies.api.params import RiskLimits

PRE_BROKER = frozenset({OrderStatus.PENDING_SUBMIT, OrderStatus.UNKNOWN})
ENDED_UNFILLED = frozenset({OrderStatus.REJECTED, OrderStatus.NOT_FOUND})
# An attempt that can still be sent under its own id: the broker never had it.
UNSENT = PRE_BROKER | {OrderStatus.NOT_FOUND}
FLATTEN_LEG = "flatten"  # the operator's flatten (the position guard's sells name their own)


@dataclass(frozen=True, slots=True, kw_only=True)
class StrategyRouting:
    """What the router needs to know about one strategy."""

    account: str
    limits: RiskLimits
    max_spread_pct: float | None = None
    min_liquidity_shares: float | None = None


@dataclass(frozen=True, slots=True)
class Work:
    """One item of a lane: an intent, or a flatten of one symbol (``intent`` None)."""

    strategy: str
    symbol: str
    intent: Intent | None
    intent_id: int | None
    flatten_leg: str = FLATTEN_LEG  # a flatten: the leg and time in force of its sell
    time_in_force: str = "day"


Job = Ticket[Work]  # a work item on its lane, with its one report


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteContext:
    """The parts every decision uses, and the ledger facts they share."""

    ledger: Ledger
    path: OrderPath
    sink: EventSink
    clock: Clock
    routing: Mapping[str, StrategyRouting]

    def mark(self, intent_id: int | None, status: str, reason: str) -> None:
        """Record how the intent ended (an intent without a row, e.g. a flatten: nothing)."""
        if intent_id is not None:
            self.ledger.set_intent_status(intent_id, status, reason, self.clock.now())

    def open_orders(self, strategy: str, symbol: str) -> list[OrderRow]:
        """The strategy's open orders on the symbol."""
        return self.ledger.orders(strategy=strategy, symbol=symbol, open_only=True)

    def open_stop(self, strategy: str, symbol: str) -> OrderRow | None:
        """The strategy's open protective stop on the symbol (the latest, while replaced)."""
        stops = [o for o in self.open_orders(strategy, symbol) if o.leg == PROTECTIVE_STOP_LEG]
        return stops[-1] if stops else None

    def held_by_orders(self, strategy: str, symbol: str) -> tuple[Decimal, Decimal]:
        """Shares the strategy's open sells hold: (non-stop sells, its protective stop). A
        stop being replaced is two rows at the broker holding the larger of the two."""
        sells = [o for o in self.open_orders(strategy, symbol) if o.side == "sell"]
        others = sum(
            (o.qty - o.filled_qty for o in sells if o.leg != PROTECTIVE_STOP_LEG), Decimal(0)
        )
        stop = max(
            (o.qty - o.filled_qty for o in sells if o.leg == PROTECTIVE_STOP_LEG),
            default=Decimal(0),
        )
        return others, stop

    def new_order(
        self,
        intent: Intent,
        intent_id: int | None,
        *,
        cid: ClientOrderId,
        side: str,
        qty: int,
        order_type: str = "market",
        time_in_force: str = "day",
        stop_price: Decimal | None = None,
        replaces: ClientOrderId | None = None,
    ) -> OrderRow:
        """Write the order row of ``intent`` (before its POST or PATCH) and return it."""
        return self.ledger.create_order(
            client_order_id=cid,
            account=self.routing[intent.strategy].account,
            strategy=intent.strategy,
            symbol=intent.symbol,
            side=side,
            order_type=order_type,
            qty=Decimal(qty),
            stop_price=stop_price,
            time_in_force=time_in_force,
            leg=intent.leg,
            signal_time=intent.signal_time,
            intent_id=intent_id,
            replaces=replaces,
            now=self.clock.now(),
        )

    def attempt(self, intent: Intent) -> tuple[ClientOrderId, OrderRow | None, list[OrderRow]]:
        """The order this buy/sell intent is: ``(cid, row, earlier)``. ``row`` is an attempt
        at the same decision that is still open (a repeated intent: it is that order), else
        None and ``cid`` is a fresh attempt's id, numbered after the ``earlier`` ones that
        ended, so a re-decided exit never collides with a refused one."""
        earlier = self.ledger.orders_of_signal(
            intent.strategy, intent.symbol, intent.leg, intent.signal_time
        )
        for row in earlier:
            if row.is_open:
                return row.client_order_id, row, earlier
        if earlier and earlier[-1].status == OrderStatus.NOT_FOUND:
            return earlier[-1].client_order_id, earlier[-1], earlier  # never received: again
        seq = len(earlier) + 1 if earlier else 0
        cid = client_order_id(intent.strategy, intent.symbol, intent.signal_time, intent.leg, seq)
        return cid, None, earlier
