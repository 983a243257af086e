"""The daemon's own values: typed ids, broker events, order rows, discrepancies.

Money and quantities are ``Decimal`` here and in the ledger; ``broker/`` converts alpaca-py's
``str | float`` at the edge and nowhere else.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import NewType

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
