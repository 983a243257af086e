"""The running daemon's position watch: outside changes are reported, once, and only when
they persist (a fill is at the broker a moment before its event reaches the ledger)."""

from __future__ import annotations

from decimal import Decimal

from magellan_daemon.domain import BrokerPosition
from magellan_daemon.node.daemon import Daemon


def _pos(symbol: str, qty: int) -> BrokerPosition:
    return BrokerPosition(symbol=symbol, qty=Decimal(qty), avg_entry_price=Decimal(10))


def test_a_persistent_unexplained_position_is_reported_once(daemon: Daemon) -> None:
    daemon.recovery.watch_positions("main", [_pos("AAPL", 5)])
    assert daemon.ledger.discrepancies() == []  # seen once: may be a fill in flight
    daemon.recovery.watch_positions("main", [_pos("AAPL", 5)])
    daemon.recovery.watch_positions("main", [_pos("AAPL", 5)])
    found = daemon.ledger.discrepancies()
    assert [(d["kind"], d["symbol"]) for d in found] == [("unexplained_position", "AAPL")]


def test_a_transient_difference_is_not_reported(daemon: Daemon) -> None:
    daemon.recovery.watch_positions("main", [_pos("TSLA", 3)])
    daemon.recovery.watch_positions("main", [])
    assert daemon.ledger.discrepancies() == []
