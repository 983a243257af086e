"""The order state machine, table by table (pure: no I/O)."""

from __future__ import annotations

import pytest

from magellan_daemon.domain import CLOSED, EVENT_FOR_STATUS, OPEN, OrderEvent, OrderStatus
from magellan_daemon.ledger.order_fsm import PHASE, TABLE, transition


@pytest.mark.parametrize(
    ("status", "event", "reported", "expected", "verdict"),
    [
        ("pending_submit", "new", None, "new", "applied"),
        ("pending_submit", "fill", None, "filled", "applied"),
        ("unknown", "not_found", None, "not_found", "applied"),
        ("not_found", "new", None, "new", "applied"),  # a re-send brought it to life
        ("not_found", "submit_unknown", None, "unknown", "applied"),
        ("new", "fill", None, "filled", "applied"),
        ("new", "new", None, "new", "repeat"),
        ("filled", "fill", None, "filled", "repeat"),
        ("canceled", "fill", None, "filled", "applied"),  # the execution raced the cancel
        ("rejected", "fill", None, "filled", "applied"),
        ("expired", "fill", None, "filled", "applied"),
        ("replaced", "fill", None, "replaced", "repeat"),
        ("pending_cancel", "partial_fill", None, "pending_cancel", "repeat"),
        ("pending_cancel", "fill", None, "filled", "applied"),
        ("pending_cancel", "order_cancel_rejected", "new", "new", "applied"),
        (
            "pending_replace",
            "order_replace_rejected",
            "partially_filled",
            "partially_filled",
            "applied",
        ),
        ("pending_replace", "replaced", None, "replaced", "applied"),
        # Alpaca takes no cancel while a replace is pending: a cancel's news means the
        # replace ended first (refused) and its frame was missed (make chaos, busy seed 1).
        ("pending_replace", "pending_cancel", None, "pending_cancel", "applied"),
        ("pending_cancel", "order_replace_rejected", "new", "pending_cancel", "repeat"),
        ("new", "order_cancel_rejected", "new", "new", "repeat"),  # its pending_cancel missed
        ("pending_new", "held", None, "held", "applied"),
        ("held", "new", None, "new", "applied"),
        ("new", "stopped", None, "stopped", "applied"),
        ("stopped", "fill", None, "filled", "applied"),
        ("new", "suspended", None, "suspended", "applied"),
        ("new", "calculated", None, "calculated", "applied"),
        ("done_for_day", "new", None, "new", "applied"),
        ("filled", "trade_bust", "partially_filled", "partially_filled", "applied"),
        ("filled", "trade_correct", "filled", "filled", "repeat"),
        ("new", "restated", "new", "new", "repeat"),
        # Old news: normal races, never an error.
        ("filled", "accepted", None, "filled", "stale"),
        ("filled", "new", None, "filled", "stale"),
        ("canceled", "pending_cancel", None, "canceled", "stale"),
        ("partially_filled", "new", None, "partially_filled", "stale"),
        ("new", "submit_unknown", None, "new", "stale"),
        ("filled", "order_cancel_rejected", "filled", "filled", "stale"),
        # Contradictions: logged at ERROR, never forced.
        ("filled", "canceled", None, "filled", "invalid"),
        ("canceled", "replaced", None, "canceled", "invalid"),
        ("new", "teleported", None, "new", "invalid"),
    ],
)
def test_transition(status, event, reported, expected, verdict) -> None:
    result = transition(status, event, reported)
    assert (result.status, result.verdict) == (expected, verdict)


def test_every_status_has_a_phase_and_is_open_or_closed() -> None:
    for status in OrderStatus:
        assert status in PHASE
        assert (status in OPEN) != (status in CLOSED), status


def test_no_status_is_a_dead_end() -> None:
    """Every status but a filled/replaced order has an edge out (not_found included)."""
    sources = {status for status, _ in TABLE}
    for status in OrderStatus:
        assert status in sources, status
    leaving = {s for (s, _), t in TABLE.items() if t != s}
    for status in OPEN | {OrderStatus.NOT_FOUND, OrderStatus.CANCELED, OrderStatus.EXPIRED}:
        assert status in leaving, status


def test_every_broker_status_maps_to_an_event_the_table_knows() -> None:
    known_events = {event for _, event in TABLE}
    for status, event in EVENT_FOR_STATUS.items():
        assert event in known_events, (status, event)
        assert transition("pending_submit", event).status == status


def test_every_event_appears_in_the_table() -> None:
    assert {event for _, event in TABLE} == set(OrderEvent)
