"""The daemon's own values: typed ids, broker events, order rows, discrepancies, the order
statuses and events (the values the order state machine in ``ledger.order_fsm`` judges).

Money and quantities are ``Decimal`` here and in the ledger; the adapters convert alpaca-py's
``str | float`` at the edge and nowhere else. The order values live here, not in the ledger,
so that an adapter can speak them without depending on persistence.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Final, NewType

from strategies.registry import REGISTRY

ClientOrderId = NewType("ClientOrderId", str)
BrokerOrderId = NewType("BrokerOrderId", str)
ExecutionId = NewType("ExecutionId", str)
StrategyId = NewType("StrategyId", str)


def client_order_id(
    strategy: str, symbol: str, signal_time: datetime, leg: str, seq: int = 0
) -> ClientOrderId:
    """The deterministic id of the order for (strategy, symbol, signal time, leg).

    Readable (an operator can tell what it is at Alpaca's dashboard) and at most 48
    characters (Alpaca's older limit). ``seq`` > 0 distinguishes the successive replacements
    of one protective stop, which share their intent's identity.
    """
    known = REGISTRY.get(strategy)
    code = known.order_code if known is not None else strategy[:4]
    stamp = signal_time.strftime("%Y%m%dT%H%M")
    base = f"mg-{code}-{symbol}-{stamp}-{leg}"
    if seq:
        base += f"-{seq}"
    if len(base) <= 48:
        return ClientOrderId(base)
    digest = hashlib.sha256(base.encode()).hexdigest()[:10]
    return ClientOrderId(f"{base[:37]}-{digest}")


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerEvent:
    """One piece of news about one order, from the stream or from reconciliation.

    ``cum_filled_qty`` is the broker's cumulative filled quantity after the event: the ledger
    turns it into an increment against what it already has, so the same fill arriving twice
    (stream and REST) is applied once.
    """

    event: str
    client_order_id: ClientOrderId
    broker_order_id: BrokerOrderId | None
    ts_event: datetime
    source: str  # "stream", "submit", "lookup", "reconcile"
    symbol: str = ""
    side: str = ""
    execution_id: ExecutionId | None = None
    cum_filled_qty: Decimal | None = None
    filled_avg_price: Decimal | None = None
    price: Decimal | None = None  # this execution's price (fills)
    qty: Decimal | None = None  # this execution's quantity (fills)
    replaced_by: BrokerOrderId | None = None
    order_status: str | None = None  # the broker's status on the order object
    reason: str = ""  # why it was refused, in the broker's words (our own news only)


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerOrder:
    """A broker order as read over REST, converted at the edge."""

    broker_order_id: BrokerOrderId
    client_order_id: ClientOrderId
    symbol: str
    side: str
    order_type: str
    qty: Decimal
    filled_qty: Decimal
    filled_avg_price: Decimal | None
    status: str
    stop_price: Decimal | None
    submitted_at: datetime
    updated_at: datetime
    replaced_by: BrokerOrderId | None = None
    replaces: BrokerOrderId | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerFill:
    """One FILL activity: an execution, with the order's cumulative quantity after it."""

    activity_id: str
    broker_order_id: BrokerOrderId
    symbol: str
    side: str
    qty: Decimal
    price: Decimal
    cum_qty: Decimal
    transaction_time: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerPosition:
    """A broker position (the account's net, all strategies together)."""

    symbol: str
    qty: Decimal
    avg_entry_price: Decimal
    current_price: Decimal | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Discrepancy:
    """Something the ledger and the broker disagree about, logged loudly, never traded."""

    kind: str
    account: str
    symbol: str
    detail: str


# -- the account as the broker reports it --------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountInfo:
    """The numbers the router needs from ``GET /v2/account``."""

    equity: Decimal
    buying_power: Decimal
    cash: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class MarketClock:
    """``GET /v2/clock``."""

    timestamp: datetime
    is_open: bool
    next_open: datetime
    next_close: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Quote:
    """The latest quote (sizes in shares)."""

    bid: float
    ask: float
    bid_size: float
    ask_size: float


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountActivity:
    """One non-trade activity: a split's share change, cash in lieu, a dividend."""

    activity_type: str  # SPLIT, CIL, DIV
    symbol: str
    date: date
    qty: Decimal  # shares (SPLIT: the change; CIL: the fraction paid; DIV: shares held)
    net_amount: Decimal  # cash credited (CIL, DIV); 0 for a SPLIT


# -- order states (the values; the transition rules are ``ledger.order_fsm``) -------------


class OrderStatus(StrEnum):
    """Every status an order row can have."""

    PENDING_SUBMIT = "pending_submit"
    UNKNOWN = "unknown"
    NOT_FOUND = "not_found"
    ACCEPTED = "accepted"
    PENDING_NEW = "pending_new"
    ACCEPTED_FOR_BIDDING = "accepted_for_bidding"
    PENDING_REVIEW = "pending_review"
    HELD = "held"
    NEW = "new"
    PARTIALLY_FILLED = "partially_filled"
    DONE_FOR_DAY = "done_for_day"
    STOPPED = "stopped"
    SUSPENDED = "suspended"
    CALCULATED = "calculated"
    PENDING_CANCEL = "pending_cancel"
    PENDING_REPLACE = "pending_replace"
    FILLED = "filled"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REJECTED = "rejected"
    REPLACED = "replaced"


class OrderEvent(StrEnum):
    """Every event the table knows (Alpaca's trade-update names plus two of ours)."""

    SUBMIT_UNKNOWN = "submit_unknown"
    NOT_FOUND = "not_found"
    ACCEPTED = "accepted"
    PENDING_NEW = "pending_new"
    ACCEPTED_FOR_BIDDING = "accepted_for_bidding"
    PENDING_REVIEW = "pending_review"
    HELD = "held"
    NEW = "new"
    PARTIAL_FILL = "partial_fill"
    FILL = "fill"
    DONE_FOR_DAY = "done_for_day"
    STOPPED = "stopped"
    SUSPENDED = "suspended"
    CALCULATED = "calculated"
    PENDING_CANCEL = "pending_cancel"
    PENDING_REPLACE = "pending_replace"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REJECTED = "rejected"
    REPLACED = "replaced"
    ORDER_CANCEL_REJECTED = "order_cancel_rejected"
    ORDER_REPLACE_REJECTED = "order_replace_rejected"
    RESTATED = "restated"
    TRADE_BUST = "trade_bust"
    TRADE_CORRECT = "trade_correct"


# Statuses of an order that works, or may work, at the broker.
OPEN: Final = frozenset(
    {
        OrderStatus.PENDING_SUBMIT,
        OrderStatus.UNKNOWN,
        OrderStatus.ACCEPTED,
        OrderStatus.PENDING_NEW,
        OrderStatus.ACCEPTED_FOR_BIDDING,
        OrderStatus.PENDING_REVIEW,
        OrderStatus.HELD,
        OrderStatus.NEW,
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.DONE_FOR_DAY,
        OrderStatus.STOPPED,
        OrderStatus.SUSPENDED,
        OrderStatus.CALCULATED,
        OrderStatus.PENDING_CANCEL,
        OrderStatus.PENDING_REPLACE,
    }
)
# Statuses of an order that no longer works at the broker (a late execution report may still
# add a fill to a canceled or expired order: see the table).
CLOSED: Final = frozenset(
    {
        OrderStatus.FILLED,
        OrderStatus.CANCELED,
        OrderStatus.EXPIRED,
        OrderStatus.REJECTED,
        OrderStatus.REPLACED,
        OrderStatus.NOT_FOUND,
    }
)

# The event that brings an order into each broker status: how a REST snapshot (a submit
# reply, a lookup or reconciliation) is turned into the same events the stream sends.
EVENT_FOR_STATUS: Final[dict[str, OrderEvent]] = {
    OrderStatus.ACCEPTED: OrderEvent.ACCEPTED,
    OrderStatus.PENDING_NEW: OrderEvent.PENDING_NEW,
    OrderStatus.ACCEPTED_FOR_BIDDING: OrderEvent.ACCEPTED_FOR_BIDDING,
    OrderStatus.PENDING_REVIEW: OrderEvent.PENDING_REVIEW,
    OrderStatus.HELD: OrderEvent.HELD,
    OrderStatus.NEW: OrderEvent.NEW,
    OrderStatus.PARTIALLY_FILLED: OrderEvent.PARTIAL_FILL,
    OrderStatus.FILLED: OrderEvent.FILL,
    OrderStatus.DONE_FOR_DAY: OrderEvent.DONE_FOR_DAY,
    OrderStatus.STOPPED: OrderEvent.STOPPED,
    OrderStatus.SUSPENDED: OrderEvent.SUSPENDED,
    OrderStatus.CALCULATED: OrderEvent.CALCULATED,
    OrderStatus.PENDING_CANCEL: OrderEvent.PENDING_CANCEL,
    OrderStatus.PENDING_REPLACE: OrderEvent.PENDING_REPLACE,
    OrderStatus.CANCELED: OrderEvent.CANCELED,
    OrderStatus.EXPIRED: OrderEvent.EXPIRED,
    OrderStatus.REJECTED: OrderEvent.REJECTED,
    OrderStatus.REPLACED: OrderEvent.REPLACED,
}


def is_open(status: str) -> bool:
    """True while the order works, or may work, at the broker."""
    return status in OPEN
