"""The order state machine: one written-down transition table, applied purely.

Our statuses are Alpaca's order statuses plus two of our own that exist *before* the broker
answers:

- ``pending_submit``: the order row is in the ledger and the HTTP call is about to be made
  (written first, so a crash between the two leaves a trace that startup resolves by looking
  the order up by ``client_order_id``).
- ``unknown``: the submit failed or timed out: the order may or may not exist at the broker.
  Only a lookup by ``client_order_id`` moves it on (to the broker's status, or to
  ``not_found`` so the router may re-send the same ``client_order_id``).

Events are Alpaca's trade-update event names (``new``, ``fill``, ...), plus
``submit_unknown`` (timeout/5xx/429) and ``not_found`` (a lookup came back empty). A submit
reply, a lookup and reconciliation turn the broker's order status into the same events with
``EVENT_FOR_STATUS``, so every path goes through this one table.
"""

from __future__ import annotations

from typing import Final

TERMINAL: Final = frozenset({"filled", "canceled", "expired", "rejected", "replaced", "not_found"})
OPEN: Final = frozenset(
    {
        "pending_submit",
        "unknown",
        "accepted",
        "pending_new",
        "new",
        "partially_filled",
        "pending_cancel",
        "pending_replace",
        "done_for_day",
        "held",
    }
)


# Which status each event leads to, from any status that allows it (see TABLE).
_EVENT_TARGET: Final = {
    "submit_unknown": "unknown",
    "not_found": "not_found",
    "pending_new": "pending_new",
    "accepted": "accepted",
    "new": "new",
    "partial_fill": "partially_filled",
    "fill": "filled",
    "pending_cancel": "pending_cancel",
    "canceled": "canceled",
    "expired": "expired",
    "done_for_day": "done_for_day",
    "held": "held",
    "pending_replace": "pending_replace",
    "replaced": "replaced",
    "rejected": "rejected",
    "order_replace_rejected": None,  # no change: see next_status
    "order_cancel_rejected": None,  # no change
}


def _build_table() -> dict[tuple[str, str], str]:
    table: dict[tuple[str, str], str] = {}
    live = ("accepted", "pending_new", "new", "partially_filled", "held", "done_for_day")
    # Before the broker has answered.
    table[("pending_submit", "submit_unknown")] = "unknown"
    table[("unknown", "submit_unknown")] = "unknown"
    for src in ("pending_submit", "unknown"):
        # A submit reply, a lookup or a stream event can each be the first news we get.
        for event, target in _EVENT_TARGET.items():
            if target is not None:
                table[(src, event)] = target
        table[(src, "held")] = "held"
    # The ordinary life of an order.
    for src in (*live, "pending_cancel", "pending_replace"):
        for event in ("partial_fill", "fill", "canceled", "expired", "rejected"):
            table[(src, event)] = _EVENT_TARGET[event]
    for src in live:
        for event in ("pending_new", "accepted", "new", "done_for_day"):
            table[(src, event)] = _EVENT_TARGET[event]
        table[(src, "pending_cancel")] = "pending_cancel"
        table[(src, "pending_replace")] = "pending_replace"
        table[(src, "replaced")] = "replaced"
    table[("pending_replace", "replaced")] = "replaced"
    # A refused cancel or replace puts the order back where it was: the broker's event then
    # carries the order's status again (the stream edge maps order_*_rejected to it).
    for src in ("pending_cancel", "pending_replace"):
        for event in ("pending_new", "accepted", "new"):
            table[(src, event)] = _EVENT_TARGET[event]
    # A partially filled order stays partially filled when told "new" again (late event).
    table[("partially_filled", "new")] = "partially_filled"
    table[("partially_filled", "accepted")] = "partially_filled"
    # Surprising but real: a fill can arrive after the cancel ack (the execution happened
    # first at the venue), and after `expired` at the close for the same reason.
    table[("canceled", "fill")] = "filled"
    table[("canceled", "partial_fill")] = "canceled"
    table[("expired", "fill")] = "filled"
    table[("expired", "partial_fill")] = "expired"
    # A replaced order may still report a fill that happened before the replace.
    table[("replaced", "partial_fill")] = "replaced"
    table[("replaced", "fill")] = "replaced"
    return table


TABLE: Final = _build_table()


# The event that brings an order into each broker status: how a REST snapshot (a lookup or
# reconciliation) is turned into the same events the stream sends.
EVENT_FOR_STATUS: Final = {
    "accepted": "accepted",
    "pending_new": "pending_new",
    "new": "new",
    "held": "held",
    "partially_filled": "partial_fill",
    "filled": "fill",
    "canceled": "canceled",
    "expired": "expired",
    "rejected": "rejected",
    "replaced": "replaced",
    "pending_cancel": "pending_cancel",
    "pending_replace": "pending_replace",
    "done_for_day": "done_for_day",
    "stopped": "new",
    "suspended": "new",
    "calculated": "done_for_day",
    "pending_review": "pending_new",
    "accepted_for_bidding": "accepted",
}


class InvalidTransition(Exception):
    """An event that the current status does not allow (logged at ERROR, never forced)."""

    def __init__(self, status: str, event: str) -> None:
        super().__init__(f"order in status {status!r} cannot take event {event!r}")
        self.status = status
        self.event = event


def next_status(status: str, event: str) -> str:
    """The status after ``event``; a repeat of the event that made the status is a no-op.

    Raises ``InvalidTransition`` when the table has no such edge.
    """
    if _EVENT_TARGET.get(event) == status and event not in ("partial_fill",):
        return status  # duplicate news (stream + reconciliation both told us)
    if event in _EVENT_TARGET and _EVENT_TARGET[event] is None:
        # The broker refused a cancel or a replace: the order stays as it was (the
        # replacement order, if one was written, gets its own `rejected`).
        return status
    try:
        return TABLE[(status, event)]
    except KeyError:
        raise InvalidTransition(status, event) from None


def is_terminal(status: str) -> bool:
    """True when no further event can change what the order did."""
    return status in TERMINAL
