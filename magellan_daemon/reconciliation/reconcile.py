"""Reconciliation: a pure diff between the ledger and the broker.

``reconcile(ledger_orders, ledger_net, snapshot, now)`` returns the ``BrokerEvent`` values
that bring the ledger up to the broker (applied through ``Ledger.apply_event``, the same door
the websocket uses) and the ``Discrepancy`` values to log loudly. No I/O here: the caller
fetches the snapshot through the router (the only broker caller).

What it repairs:
- an order whose status at the broker moved on while we were not listening (missed
  ``new``/``canceled``/``expired``/``replaced`` events);
- fills we missed: the broker's cumulative ``filled_qty`` is above ours. Each missed
  execution comes from the FILL activities when they cover it (so the price per execution is
  right), otherwise one event carries the order's cumulative quantity and average price;
- orders written ``pending_submit``/``unknown`` that the broker never received
  (``not_found``), so the router may send them again with the same ``client_order_id``.

What it only reports: a broker position the ledger cannot explain (or a ledger position the
broker does not have), and broker orders that are not ours. Those are never traded. A broker
position that is the ledger's times the ratio of a split announced for today (rounded
down, as the broker applies it) is explained, not reported: the daemon's corporate-action
check applies that split to the ledger once the broker confirms it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from magellan_daemon.domain import (
    EVENT_FOR_STATUS,
    BrokerEvent,
    BrokerFill,
    BrokerOrder,
    BrokerOrderId,
    BrokerPosition,
    ClientOrderId,
    Discrepancy,
    is_open,
)
from magellan_daemon.ledger.split_accounting import whole_shares
from magellan_daemon.ledger.store import OrderRow


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerSnapshot:
    """What the broker said, read through the router for one account."""

    account: str
    orders: Mapping[ClientOrderId, BrokerOrder]
    not_found: frozenset[ClientOrderId] = frozenset()
    fills: Sequence[BrokerFill] = ()
    positions: Sequence[BrokerPosition] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconcileResult:
    """Events to apply, in order, and discrepancies to report."""

    events: list[BrokerEvent] = field(default_factory=list)
    discrepancies: list[Discrepancy] = field(default_factory=list)


def reconcile(
    ledger_orders: Iterable[OrderRow],
    ledger_net: Mapping[str, Decimal],
    snapshot: BrokerSnapshot,
    now: datetime,
    derived: frozenset[tuple[str, Decimal, Decimal]] = frozenset(),
    written_since: frozenset[ClientOrderId] = frozenset(),
    pending_splits: Mapping[str, Decimal] | None = None,
) -> ReconcileResult:
    """Diff the ledger's orders and net positions of one account against ``snapshot``.
    ``derived`` names the ledger's fills still priced from an order's average (broker order
    id, cumulative qty before and after): the executions in those ranges among the activities
    are sent again, with their own prices, so the ledger can correct them.
    ``written_since`` names the ledger's orders written after ``ledger_orders`` was read (while
    the snapshot was taken): ours, never foreign, and left to the stream."""
    result = ReconcileResult()
    fills_by_order: dict[BrokerOrderId, list[BrokerFill]] = {}
    for fill in snapshot.fills:
        fills_by_order.setdefault(fill.broker_order_id, []).append(fill)
    ours: set[str] = set(written_since)
    # The position diff compares the broker with the ledger AS IT WILL BE once the fill
    # events below are applied, so repairing a missed fill is not also reported.
    expected = dict(ledger_net)
    for order in ledger_orders:
        ours.add(order.client_order_id)
        broker = snapshot.orders.get(order.client_order_id)
        if broker is None:
            if order.client_order_id in snapshot.not_found and order.status in (
                "pending_submit",
                "unknown",
            ):
                result.events.append(_event("not_found", order, None, now))
            continue
        result.events.extend(_order_events(order, broker, fills_by_order, now))
        result.events.extend(
            _repricings(order, broker, fills_by_order.get(broker.broker_order_id, ()), derived)
        )
        missed = max(broker.filled_qty - order.filled_qty, Decimal(0))
        if missed:
            sign = 1 if order.side == "buy" else -1
            expected[order.symbol] = expected.get(order.symbol, Decimal(0)) + sign * missed
    for cid, broker in snapshot.orders.items():
        if cid not in ours and is_open(broker.status):
            result.discrepancies.append(
                Discrepancy(
                    kind="foreign_order",
                    account=snapshot.account,
                    symbol=broker.symbol,
                    detail=f"open broker order {broker.broker_order_id} ({cid}) is not in the "
                    f"ledger; left alone",
                )
            )
    result.discrepancies.extend(
        position_diff(snapshot.account, expected, snapshot.positions, pending_splits)
    )
    return result


def _order_events(
    order: OrderRow,
    broker: BrokerOrder,
    fills_by_order: Mapping[BrokerOrderId, list[BrokerFill]],
    now: datetime,
) -> list[BrokerEvent]:
    events: list[BrokerEvent] = []
    if broker.filled_qty > order.filled_qty:
        missed = sorted(
            (
                f
                for f in fills_by_order.get(broker.broker_order_id, ())
                if f.cum_qty > order.filled_qty
            ),
            key=lambda f: f.cum_qty,
        )
        events.extend(_fill_event(order, broker, fill) for fill in missed)
        covered = missed[-1].cum_qty if missed else order.filled_qty
        if covered < broker.filled_qty:
            # Activities did not cover it (paged out or not yet listed): the order's own
            # cumulative quantity and average price still give the exact position.
            events.append(
                BrokerEvent(
                    event="fill" if broker.filled_qty >= broker.qty else "partial_fill",
                    client_order_id=order.client_order_id,
                    broker_order_id=broker.broker_order_id,
                    ts_event=broker.updated_at,
                    source="reconcile",
                    symbol=broker.symbol,
                    side=broker.side,
                    cum_filled_qty=broker.filled_qty,
                    filled_avg_price=broker.filled_avg_price,
                )
            )
    status_event = EVENT_FOR_STATUS.get(broker.status)
    if broker.status != order.status and status_event not in (None, "fill", "partial_fill"):
        events.append(_event(status_event, order, broker, now))
    return events


def _repricings(
    order: OrderRow,
    broker: BrokerOrder,
    fills: Iterable[BrokerFill],
    derived: frozenset[tuple[str, Decimal, Decimal]],
) -> list[BrokerEvent]:
    """The executions, with their own prices, of fills the ledger booked from averages."""
    if not derived:
        return []
    return [
        _fill_event(order, broker, fill)
        for fill in sorted(fills, key=lambda f: f.cum_qty)  # lowest first: each splits off
        if fill.cum_qty <= order.filled_qty
        and any(
            oid == broker.broker_order_id and low < fill.cum_qty <= high
            for oid, low, high in derived
        )
    ]


def _fill_event(order: OrderRow, broker: BrokerOrder, fill: BrokerFill) -> BrokerEvent:
    """One execution from the FILL activities, with its own price and quantity."""
    return BrokerEvent(
        event="fill" if fill.cum_qty >= broker.qty else "partial_fill",
        client_order_id=order.client_order_id,
        broker_order_id=broker.broker_order_id,
        ts_event=fill.transaction_time,
        source="reconcile",
        symbol=broker.symbol,
        side=broker.side,
        cum_filled_qty=fill.cum_qty,
        price=fill.price,
        qty=fill.qty,
    )


def _event(event: str, order: OrderRow, broker: BrokerOrder | None, now: datetime) -> BrokerEvent:
    return BrokerEvent(
        event=event,
        client_order_id=order.client_order_id,
        broker_order_id=None if broker is None else broker.broker_order_id,
        ts_event=now if broker is None else broker.updated_at,
        source="reconcile",
        symbol=order.symbol,
        side=order.side,
        cum_filled_qty=None if broker is None else broker.filled_qty,
        filled_avg_price=None if broker is None else broker.filled_avg_price,
        replaced_by=None if broker is None else broker.replaced_by,
        order_status=None if broker is None else broker.status,
    )


def position_diff(
    account: str,
    ledger_net: Mapping[str, Decimal],
    positions: Sequence[BrokerPosition],
    pending_splits: Mapping[str, Decimal] | None = None,
) -> list[Discrepancy]:
    """Symbols where the broker's net position differs from the ledger strategies' sum
    (and no split the ledger has still to apply explains it: ``pending_splits``, symbol ->
    ratio)."""
    broker_net = {p.symbol: p.qty for p in positions if p.qty}
    splits = pending_splits or {}
    found = []
    for symbol in sorted(set(broker_net) | {s for s, q in ledger_net.items() if q}):
        have, want = broker_net.get(symbol, Decimal(0)), ledger_net.get(symbol, Decimal(0))
        if have == want:
            continue
        if symbol in splits and have == whole_shares(want, splits[symbol]):
            continue
        kind = "unexplained_position" if have > want else "missing_position"
        found.append(
            Discrepancy(
                kind=kind,
                account=account,
                symbol=symbol,
                detail=f"broker holds {have}, ledger strategies hold {want}; "
                f"the difference is never traded",
            )
        )
    return found
