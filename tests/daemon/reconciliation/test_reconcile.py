"""The reconciliation diff: pure, table-driven."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from magellan_daemon.domain import (
    BrokerFill,
    BrokerOrder,
    BrokerOrderId,
    BrokerPosition,
    ClientOrderId,
)
from magellan_daemon.ledger.store import OrderRow
from magellan_daemon.reconciliation.reconcile import BrokerSnapshot, reconcile

T0 = datetime(2024, 11, 18, 14, 31, tzinfo=UTC)


def _row(cid: str, status: str = "new", filled: int = 0, qty: int = 10) -> OrderRow:
    return OrderRow(
        client_order_id=ClientOrderId(cid),
        account="main",
        strategy="daily_trend",
        symbol="TSLA",
        side="buy",
        order_type="market",
        qty=Decimal(qty),
        stop_price=None,
        time_in_force="day",
        leg="entry",
        signal_time=T0,
        intent_id=None,
        replaces=None,
        status=status,
        filled_qty=Decimal(filled),
        filled_avg_price=None,
        broker_order_id=f"b-{cid}",
        created_at=T0,
        updated_at=T0,
    )


def _broker(
    cid: str, status: str, filled: int, qty: int = 10, avg: str | None = "100"
) -> BrokerOrder:
    return BrokerOrder(
        broker_order_id=BrokerOrderId(f"b-{cid}"),
        client_order_id=ClientOrderId(cid),
        symbol="TSLA",
        side="buy",
        order_type="market",
        qty=Decimal(qty),
        filled_qty=Decimal(filled),
        filled_avg_price=None if avg is None else Decimal(avg),
        status=status,
        stop_price=None,
        submitted_at=T0,
        updated_at=T0 + timedelta(minutes=5),
    )


def _fill(cid: str, qty: int, cum: int, price: str) -> BrokerFill:
    return BrokerFill(
        activity_id=f"a-{cid}-{cum}",
        broker_order_id=BrokerOrderId(f"b-{cid}"),
        symbol="TSLA",
        side="buy",
        qty=Decimal(qty),
        price=Decimal(price),
        cum_qty=Decimal(cum),
        transaction_time=T0 + timedelta(minutes=cum),
    )


def _snap(orders, fills=(), positions=(), not_found=()) -> BrokerSnapshot:
    return BrokerSnapshot(
        account="main",
        orders={o.client_order_id: o for o in orders},
        not_found=frozenset(ClientOrderId(c) for c in not_found),
        fills=list(fills),
        positions=list(positions),
    )


def test_missed_fills_come_from_activities_with_their_own_prices() -> None:
    result = reconcile(
        [_row("a", "partially_filled", filled=4)],
        {"TSLA": Decimal(4)},
        _snap(
            [_broker("a", "filled", 10)],
            [_fill("a", 4, 4, "99"), _fill("a", 6, 10, "101")],
            [BrokerPosition(symbol="TSLA", qty=Decimal(10), avg_entry_price=Decimal(100))],
        ),
        T0,
    )
    assert [(e.event, e.cum_filled_qty, e.price) for e in result.events] == [
        ("fill", Decimal(10), Decimal(101))
    ]
    # The broker's 10 shares are explained once the missed fill is applied: no discrepancy.
    assert result.discrepancies == []


def test_fill_without_activity_uses_the_orders_cumulative_qty_and_average() -> None:
    result = reconcile([_row("a")], {}, _snap([_broker("a", "filled", 10, avg="100.5")]), T0)
    (event,) = result.events
    assert event.event == "fill" and event.cum_filled_qty == 10
    assert event.filled_avg_price == Decimal("100.5")


def test_status_only_changes_become_events() -> None:
    result = reconcile(
        [_row("a"), _row("b", "pending_submit"), _row("c", "filled", filled=10)],
        {},
        _snap(
            [_broker("a", "canceled", 0, avg=None), _broker("c", "filled", 10)],
            not_found=["b"],
        ),
        T0,
    )
    assert sorted((e.client_order_id, e.event) for e in result.events) == [
        ("a", "canceled"),
        ("b", "not_found"),
    ]


def test_foreign_orders_and_unexplained_positions_are_reported_not_traded() -> None:
    result = reconcile(
        [],
        {"AAPL": Decimal(5)},
        _snap(
            [_broker("manual-1", "new", 0, avg=None)],
            positions=[BrokerPosition(symbol="TSLA", qty=Decimal(3), avg_entry_price=Decimal(1))],
        ),
        T0,
    )
    assert result.events == []
    assert sorted((d.kind, d.symbol) for d in result.discrepancies) == [
        ("foreign_order", "TSLA"),
        ("missing_position", "AAPL"),
        ("unexplained_position", "TSLA"),
    ]


def test_fills_booked_from_averages_get_their_executions_again() -> None:
    derived = frozenset({("b-a", Decimal(4), Decimal(10))})
    result = reconcile(
        [_row("a", "filled", filled=10)],
        {"TSLA": Decimal(10)},
        _snap(
            [_broker("a", "filled", 10)],
            [_fill("a", 4, 4, "99"), _fill("a", 6, 10, "101")],
            [BrokerPosition(symbol="TSLA", qty=Decimal(10), avg_entry_price=Decimal(100))],
        ),
        T0,
        derived,
    )
    assert [(e.event, e.cum_filled_qty, e.qty, e.price) for e in result.events] == [
        ("fill", Decimal(10), Decimal(6), Decimal(101))
    ]
    assert not result.discrepancies
    plain = reconcile(
        [_row("a", "filled", filled=10)],
        {"TSLA": Decimal(10)},
        _snap([_broker("a", "filled", 10)], [_fill("a", 6, 10, "101")]),
        T0,
    )
    assert not plain.events  # nothing booked from averages: nothing sent again


def test_an_order_the_ledger_wrote_during_the_snapshot_is_not_foreign() -> None:
    snapshot = _snap([_broker("late", "new", 0, avg=None), _broker("manual-1", "new", 0, avg=None)])
    result = reconcile([], {}, snapshot, T0, written_since=frozenset({ClientOrderId("late")}))
    assert [d.detail.split("(")[1].split(")")[0] for d in result.discrepancies] == ["manual-1"]
