"""The position diff explains a broker position that a split announced for today makes
(pure: no I/O)."""

from __future__ import annotations

from decimal import Decimal

from magellan_daemon.domain import BrokerPosition
from magellan_daemon.reconciliation.reconcile import position_diff


def _held(symbol: str, qty: int) -> BrokerPosition:
    return BrokerPosition(symbol=symbol, qty=Decimal(qty), avg_entry_price=Decimal(1))


def test_a_pending_split_explains_the_brokers_new_quantity() -> None:
    ledger = {"NVDA": Decimal(44), "WKHS": Decimal(25906)}
    broker = [_held("NVDA", 440), _held("WKHS", 1295)]
    splits = {"NVDA": Decimal(10), "WKHS": Decimal("0.05")}
    assert position_diff("main", ledger, broker, splits) == []
    # Without the splits (or with another ratio) it is a discrepancy, as before.
    assert [d.symbol for d in position_diff("main", ledger, broker)] == ["NVDA", "WKHS"]
    wrong = position_diff("main", ledger, broker, {"NVDA": Decimal(4), "WKHS": Decimal("0.05")})
    assert [(d.symbol, d.kind) for d in wrong] == [("NVDA", "unexplained_position")]


def test_the_old_quantity_is_no_discrepancy_while_the_split_is_pending() -> None:
    assert (
        position_diff("main", {"NVDA": Decimal(44)}, [_held("NVDA", 44)], {"NVDA": Decimal(10)})
        == []
    )
