"""The order state machine: one written-down transition table, applied purely.

Our statuses are Alpaca's order statuses plus three of our own:

- ``pending_submit``: the order row is in the ledger and the HTTP call is about to be made
  (written first, so a crash between the two leaves a trace that startup resolves by looking
  the order up by ``client_order_id``).
- ``unknown``: the submit failed or timed out: the order may or may not exist at the broker.
  Only a lookup by ``client_order_id`` moves it on.
- ``not_found``: a lookup by ``client_order_id`` answered a definite 404: the broker never
  received it. A re-send (same ``client_order_id``) may still bring it to life, so the broker's
  news is accepted from here too.

Events are Alpaca's trade-update event names (``new``, ``fill``, ...), plus ``submit_unknown``
(timeout/5xx/429) and ``not_found`` (a definite 404). A submit reply, a lookup and
reconciliation turn the broker's order status into the same events with ``EVENT_FOR_STATUS``,
so every path goes through this one table.

How an event is judged, in this order (``transition``):

1. an edge in ``TABLE``: applied (an edge to the same status is a repeat: no change);
2. the edge's target is ``REPORTED``: the order goes to the status the broker reported with
   the event (a refused cancel or replace puts it back where it was; a bust or correction
   leaves it as the broker says);
3. the event would move the order *back* in its life (``PHASE``): old news, e.g. the POST
   reply ``accepted`` arriving after the stream's ``fill``. Normal, ignored, DEBUG;
4. anything else contradicts what we know (``filled`` then ``canceled``): ``invalid``, ERROR,
   and the status is never forced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from magellan_daemon.domain import CLOSED, OrderEvent, OrderStatus

S = OrderStatus
E = OrderEvent
REPORTED: Final = "reported"  # the target is the status the broker reported with the event

# Where each status lies in an order's life: news that would move an order to an earlier
# phase is old news (rule 3 of the module docstring).
PHASE: Final = {
    S.PENDING_SUBMIT: 0,
    S.UNKNOWN: 0,
    S.NOT_FOUND: 0,
    S.ACCEPTED: 1,
    S.PENDING_NEW: 1,
    S.ACCEPTED_FOR_BIDDING: 1,
    S.PENDING_REVIEW: 1,
    S.HELD: 1,
    S.NEW: 2,
    S.DONE_FOR_DAY: 2,
    S.STOPPED: 2,
    S.SUSPENDED: 2,
    S.CALCULATED: 2,
    S.PARTIALLY_FILLED: 3,
    S.PENDING_CANCEL: 4,
    S.PENDING_REPLACE: 4,
    S.FILLED: 5,
    S.CANCELED: 5,
    S.EXPIRED: 5,
    S.REJECTED: 5,
    S.REPLACED: 5,
}

# The status each broker event stands for (used for the phase comparison).
_EVENT_STATUS: Final = {
    E.SUBMIT_UNKNOWN: S.UNKNOWN,
    E.NOT_FOUND: S.NOT_FOUND,
    E.ACCEPTED: S.ACCEPTED,
    E.PENDING_NEW: S.PENDING_NEW,
    E.ACCEPTED_FOR_BIDDING: S.ACCEPTED_FOR_BIDDING,
    E.PENDING_REVIEW: S.PENDING_REVIEW,
    E.HELD: S.HELD,
    E.NEW: S.NEW,
    E.PARTIAL_FILL: S.PARTIALLY_FILLED,
    E.FILL: S.FILLED,
    E.DONE_FOR_DAY: S.DONE_FOR_DAY,
    E.STOPPED: S.STOPPED,
    E.SUSPENDED: S.SUSPENDED,
    E.CALCULATED: S.CALCULATED,
    E.PENDING_CANCEL: S.PENDING_CANCEL,
    E.PENDING_REPLACE: S.PENDING_REPLACE,
    E.CANCELED: S.CANCELED,
    E.EXPIRED: S.EXPIRED,
    E.REJECTED: S.REJECTED,
    E.REPLACED: S.REPLACED,
}

# (current status, event) -> next status. One line per edge.
TABLE: Final[dict[tuple[OrderStatus, OrderEvent], OrderStatus | str]] = {
    # -- before the broker has answered: any news is the first news --------------------------
    (S.PENDING_SUBMIT, E.SUBMIT_UNKNOWN): S.UNKNOWN,
    (S.PENDING_SUBMIT, E.NOT_FOUND): S.NOT_FOUND,
    (S.PENDING_SUBMIT, E.ACCEPTED): S.ACCEPTED,
    (S.PENDING_SUBMIT, E.PENDING_NEW): S.PENDING_NEW,
    (S.PENDING_SUBMIT, E.ACCEPTED_FOR_BIDDING): S.ACCEPTED_FOR_BIDDING,
    (S.PENDING_SUBMIT, E.PENDING_REVIEW): S.PENDING_REVIEW,
    (S.PENDING_SUBMIT, E.HELD): S.HELD,
    (S.PENDING_SUBMIT, E.NEW): S.NEW,
    (S.PENDING_SUBMIT, E.PARTIAL_FILL): S.PARTIALLY_FILLED,
    (S.PENDING_SUBMIT, E.FILL): S.FILLED,
    (S.PENDING_SUBMIT, E.DONE_FOR_DAY): S.DONE_FOR_DAY,
    (S.PENDING_SUBMIT, E.STOPPED): S.STOPPED,
    (S.PENDING_SUBMIT, E.SUSPENDED): S.SUSPENDED,
    (S.PENDING_SUBMIT, E.CALCULATED): S.CALCULATED,
    (S.PENDING_SUBMIT, E.PENDING_CANCEL): S.PENDING_CANCEL,
    (S.PENDING_SUBMIT, E.PENDING_REPLACE): S.PENDING_REPLACE,
    (S.PENDING_SUBMIT, E.CANCELED): S.CANCELED,
    (S.PENDING_SUBMIT, E.EXPIRED): S.EXPIRED,
    (S.PENDING_SUBMIT, E.REJECTED): S.REJECTED,
    (S.PENDING_SUBMIT, E.REPLACED): S.REPLACED,
    (S.UNKNOWN, E.SUBMIT_UNKNOWN): S.UNKNOWN,
    (S.UNKNOWN, E.NOT_FOUND): S.NOT_FOUND,
    (S.UNKNOWN, E.ACCEPTED): S.ACCEPTED,
    (S.UNKNOWN, E.PENDING_NEW): S.PENDING_NEW,
    (S.UNKNOWN, E.ACCEPTED_FOR_BIDDING): S.ACCEPTED_FOR_BIDDING,
    (S.UNKNOWN, E.PENDING_REVIEW): S.PENDING_REVIEW,
    (S.UNKNOWN, E.HELD): S.HELD,
    (S.UNKNOWN, E.NEW): S.NEW,
    (S.UNKNOWN, E.PARTIAL_FILL): S.PARTIALLY_FILLED,
    (S.UNKNOWN, E.FILL): S.FILLED,
    (S.UNKNOWN, E.DONE_FOR_DAY): S.DONE_FOR_DAY,
    (S.UNKNOWN, E.STOPPED): S.STOPPED,
    (S.UNKNOWN, E.SUSPENDED): S.SUSPENDED,
    (S.UNKNOWN, E.CALCULATED): S.CALCULATED,
    (S.UNKNOWN, E.PENDING_CANCEL): S.PENDING_CANCEL,
    (S.UNKNOWN, E.PENDING_REPLACE): S.PENDING_REPLACE,
    (S.UNKNOWN, E.CANCELED): S.CANCELED,
    (S.UNKNOWN, E.EXPIRED): S.EXPIRED,
    (S.UNKNOWN, E.REJECTED): S.REJECTED,
    (S.UNKNOWN, E.REPLACED): S.REPLACED,
    # A re-send of a not-found order (same client_order_id), or a lookup that raced the
    # broker's own bookkeeping: the broker's news wins.
    (S.NOT_FOUND, E.SUBMIT_UNKNOWN): S.UNKNOWN,
    (S.NOT_FOUND, E.NOT_FOUND): S.NOT_FOUND,
    (S.NOT_FOUND, E.ACCEPTED): S.ACCEPTED,
    (S.NOT_FOUND, E.PENDING_NEW): S.PENDING_NEW,
    (S.NOT_FOUND, E.NEW): S.NEW,
    (S.NOT_FOUND, E.PARTIAL_FILL): S.PARTIALLY_FILLED,
    (S.NOT_FOUND, E.FILL): S.FILLED,
    (S.NOT_FOUND, E.CANCELED): S.CANCELED,
    (S.NOT_FOUND, E.EXPIRED): S.EXPIRED,
    (S.NOT_FOUND, E.REJECTED): S.REJECTED,
    # -- known at the broker, not yet working ------------------------------------------------
    (S.ACCEPTED, E.ACCEPTED): S.ACCEPTED,
    (S.ACCEPTED, E.PENDING_NEW): S.PENDING_NEW,
    (S.ACCEPTED, E.ACCEPTED_FOR_BIDDING): S.ACCEPTED_FOR_BIDDING,
    (S.ACCEPTED, E.PENDING_REVIEW): S.PENDING_REVIEW,
    (S.ACCEPTED, E.HELD): S.HELD,
    (S.ACCEPTED, E.NEW): S.NEW,
    (S.ACCEPTED, E.PARTIAL_FILL): S.PARTIALLY_FILLED,
    (S.ACCEPTED, E.FILL): S.FILLED,
    (S.ACCEPTED, E.DONE_FOR_DAY): S.DONE_FOR_DAY,
    (S.ACCEPTED, E.STOPPED): S.STOPPED,
    (S.ACCEPTED, E.SUSPENDED): S.SUSPENDED,
    (S.ACCEPTED, E.CALCULATED): S.CALCULATED,
    (S.ACCEPTED, E.PENDING_CANCEL): S.PENDING_CANCEL,
    (S.ACCEPTED, E.PENDING_REPLACE): S.PENDING_REPLACE,
    (S.ACCEPTED, E.CANCELED): S.CANCELED,
    (S.ACCEPTED, E.EXPIRED): S.EXPIRED,
    (S.ACCEPTED, E.REJECTED): S.REJECTED,
    (S.ACCEPTED, E.REPLACED): S.REPLACED,
    (S.ACCEPTED, E.ORDER_CANCEL_REJECTED): REPORTED,
    (S.ACCEPTED, E.ORDER_REPLACE_REJECTED): REPORTED,
    (S.ACCEPTED, E.RESTATED): REPORTED,
    (S.PENDING_NEW, E.PENDING_NEW): S.PENDING_NEW,
    (S.PENDING_NEW, E.ACCEPTED): S.ACCEPTED,
    (S.PENDING_NEW, E.HELD): S.HELD,
    (S.PENDING_NEW, E.NEW): S.NEW,
    (S.PENDING_NEW, E.PARTIAL_FILL): S.PARTIALLY_FILLED,
    (S.PENDING_NEW, E.FILL): S.FILLED,
    (S.PENDING_NEW, E.DONE_FOR_DAY): S.DONE_FOR_DAY,
    (S.PENDING_NEW, E.STOPPED): S.STOPPED,
    (S.PENDING_NEW, E.SUSPENDED): S.SUSPENDED,
    (S.PENDING_NEW, E.CALCULATED): S.CALCULATED,
    (S.PENDING_NEW, E.PENDING_CANCEL): S.PENDING_CANCEL,
    (S.PENDING_NEW, E.PENDING_REPLACE): S.PENDING_REPLACE,
    (S.PENDING_NEW, E.CANCELED): S.CANCELED,
    (S.PENDING_NEW, E.EXPIRED): S.EXPIRED,
    (S.PENDING_NEW, E.REJECTED): S.REJECTED,
    (S.PENDING_NEW, E.REPLACED): S.REPLACED,
    (S.PENDING_NEW, E.ORDER_CANCEL_REJECTED): REPORTED,
    (S.PENDING_NEW, E.ORDER_REPLACE_REJECTED): REPORTED,
    (S.PENDING_NEW, E.RESTATED): REPORTED,
    (S.ACCEPTED_FOR_BIDDING, E.ACCEPTED_FOR_BIDDING): S.ACCEPTED_FOR_BIDDING,
    (S.ACCEPTED_FOR_BIDDING, E.NEW): S.NEW,
    (S.ACCEPTED_FOR_BIDDING, E.PARTIAL_FILL): S.PARTIALLY_FILLED,
    (S.ACCEPTED_FOR_BIDDING, E.FILL): S.FILLED,
    (S.ACCEPTED_FOR_BIDDING, E.PENDING_CANCEL): S.PENDING_CANCEL,
    (S.ACCEPTED_FOR_BIDDING, E.CANCELED): S.CANCELED,
    (S.ACCEPTED_FOR_BIDDING, E.EXPIRED): S.EXPIRED,
    (S.ACCEPTED_FOR_BIDDING, E.REJECTED): S.REJECTED,
    (S.PENDING_REVIEW, E.PENDING_REVIEW): S.PENDING_REVIEW,
    (S.PENDING_REVIEW, E.ACCEPTED): S.ACCEPTED,
    (S.PENDING_REVIEW, E.PENDING_NEW): S.PENDING_NEW,
    (S.PENDING_REVIEW, E.NEW): S.NEW,
    (S.PENDING_REVIEW, E.CANCELED): S.CANCELED,
    (S.PENDING_REVIEW, E.REJECTED): S.REJECTED,
    # A bracket/OTO child waits in `held` until its parent fills.
    (S.HELD, E.HELD): S.HELD,
    (S.HELD, E.ACCEPTED): S.ACCEPTED,
    (S.HELD, E.PENDING_NEW): S.PENDING_NEW,
    (S.HELD, E.NEW): S.NEW,
    (S.HELD, E.PARTIAL_FILL): S.PARTIALLY_FILLED,
    (S.HELD, E.FILL): S.FILLED,
    (S.HELD, E.PENDING_CANCEL): S.PENDING_CANCEL,
    (S.HELD, E.PENDING_REPLACE): S.PENDING_REPLACE,
    (S.HELD, E.CANCELED): S.CANCELED,
    (S.HELD, E.EXPIRED): S.EXPIRED,
    (S.HELD, E.REJECTED): S.REJECTED,
    (S.HELD, E.REPLACED): S.REPLACED,
    # -- working ----------------------------------------------------------------------------
    (S.NEW, E.NEW): S.NEW,
    (S.NEW, E.PARTIAL_FILL): S.PARTIALLY_FILLED,
    (S.NEW, E.FILL): S.FILLED,
    (S.NEW, E.DONE_FOR_DAY): S.DONE_FOR_DAY,
    (S.NEW, E.STOPPED): S.STOPPED,
    (S.NEW, E.SUSPENDED): S.SUSPENDED,
    (S.NEW, E.CALCULATED): S.CALCULATED,
    (S.NEW, E.PENDING_CANCEL): S.PENDING_CANCEL,
    (S.NEW, E.PENDING_REPLACE): S.PENDING_REPLACE,
    (S.NEW, E.CANCELED): S.CANCELED,
    (S.NEW, E.EXPIRED): S.EXPIRED,
    (S.NEW, E.REJECTED): S.REJECTED,
    (S.NEW, E.REPLACED): S.REPLACED,
    (S.NEW, E.ORDER_CANCEL_REJECTED): REPORTED,  # the pending_cancel event was missed
    (S.NEW, E.ORDER_REPLACE_REJECTED): REPORTED,
    (S.NEW, E.RESTATED): REPORTED,
    (S.NEW, E.TRADE_BUST): REPORTED,
    (S.NEW, E.TRADE_CORRECT): REPORTED,
    (S.PARTIALLY_FILLED, E.PARTIAL_FILL): S.PARTIALLY_FILLED,
    (S.PARTIALLY_FILLED, E.FILL): S.FILLED,
    (S.PARTIALLY_FILLED, E.DONE_FOR_DAY): S.DONE_FOR_DAY,
    (S.PARTIALLY_FILLED, E.STOPPED): S.STOPPED,
    (S.PARTIALLY_FILLED, E.SUSPENDED): S.SUSPENDED,
    (S.PARTIALLY_FILLED, E.CALCULATED): S.CALCULATED,
    (S.PARTIALLY_FILLED, E.PENDING_CANCEL): S.PENDING_CANCEL,
    (S.PARTIALLY_FILLED, E.PENDING_REPLACE): S.PENDING_REPLACE,
    (S.PARTIALLY_FILLED, E.CANCELED): S.CANCELED,
    (S.PARTIALLY_FILLED, E.EXPIRED): S.EXPIRED,
    (S.PARTIALLY_FILLED, E.REJECTED): S.REJECTED,
    (S.PARTIALLY_FILLED, E.REPLACED): S.REPLACED,
    (S.PARTIALLY_FILLED, E.ORDER_CANCEL_REJECTED): REPORTED,
    (S.PARTIALLY_FILLED, E.ORDER_REPLACE_REJECTED): REPORTED,
    (S.PARTIALLY_FILLED, E.RESTATED): REPORTED,
    (S.PARTIALLY_FILLED, E.TRADE_BUST): REPORTED,
    (S.PARTIALLY_FILLED, E.TRADE_CORRECT): REPORTED,
    # done_for_day / stopped / suspended / calculated: still the broker's, may fill or end.
    (S.DONE_FOR_DAY, E.DONE_FOR_DAY): S.DONE_FOR_DAY,
    (S.DONE_FOR_DAY, E.NEW): S.NEW,  # a GTC order working again the next session
    (S.DONE_FOR_DAY, E.PARTIAL_FILL): S.PARTIALLY_FILLED,
    (S.DONE_FOR_DAY, E.FILL): S.FILLED,
    (S.DONE_FOR_DAY, E.CALCULATED): S.CALCULATED,
    (S.DONE_FOR_DAY, E.PENDING_CANCEL): S.PENDING_CANCEL,
    (S.DONE_FOR_DAY, E.PENDING_REPLACE): S.PENDING_REPLACE,
    (S.DONE_FOR_DAY, E.CANCELED): S.CANCELED,
    (S.DONE_FOR_DAY, E.EXPIRED): S.EXPIRED,
    (S.DONE_FOR_DAY, E.REPLACED): S.REPLACED,
    (S.DONE_FOR_DAY, E.ORDER_CANCEL_REJECTED): REPORTED,
    (S.DONE_FOR_DAY, E.ORDER_REPLACE_REJECTED): REPORTED,
    (S.STOPPED, E.STOPPED): S.STOPPED,
    (S.STOPPED, E.PARTIAL_FILL): S.PARTIALLY_FILLED,
    (S.STOPPED, E.FILL): S.FILLED,
    (S.STOPPED, E.CANCELED): S.CANCELED,
    (S.STOPPED, E.EXPIRED): S.EXPIRED,
    (S.SUSPENDED, E.SUSPENDED): S.SUSPENDED,
    (S.SUSPENDED, E.NEW): S.NEW,
    (S.SUSPENDED, E.PARTIAL_FILL): S.PARTIALLY_FILLED,
    (S.SUSPENDED, E.FILL): S.FILLED,
    (S.SUSPENDED, E.PENDING_CANCEL): S.PENDING_CANCEL,
    (S.SUSPENDED, E.CANCELED): S.CANCELED,
    (S.SUSPENDED, E.EXPIRED): S.EXPIRED,
    (S.SUSPENDED, E.REJECTED): S.REJECTED,
    (S.CALCULATED, E.CALCULATED): S.CALCULATED,
    (S.CALCULATED, E.PARTIAL_FILL): S.CALCULATED,
    (S.CALCULATED, E.FILL): S.FILLED,
    (S.CALCULATED, E.CANCELED): S.CANCELED,
    (S.CALCULATED, E.EXPIRED): S.EXPIRED,
    # -- a cancel or replace requested: the order still works until the broker says -------
    (S.PENDING_CANCEL, E.PENDING_CANCEL): S.PENDING_CANCEL,
    (S.PENDING_CANCEL, E.PARTIAL_FILL): S.PENDING_CANCEL,
    (S.PENDING_CANCEL, E.FILL): S.FILLED,
    (S.PENDING_CANCEL, E.CANCELED): S.CANCELED,
    (S.PENDING_CANCEL, E.EXPIRED): S.EXPIRED,
    (S.PENDING_CANCEL, E.REJECTED): S.REJECTED,
    (S.PENDING_CANCEL, E.ORDER_CANCEL_REJECTED): REPORTED,  # back to what it was
    # The refused replace's news, late, after the cancel that followed it: no change.
    (S.PENDING_CANCEL, E.ORDER_REPLACE_REJECTED): S.PENDING_CANCEL,
    (S.PENDING_CANCEL, E.TRADE_BUST): S.PENDING_CANCEL,
    (S.PENDING_CANCEL, E.TRADE_CORRECT): S.PENDING_CANCEL,
    (S.PENDING_REPLACE, E.PENDING_REPLACE): S.PENDING_REPLACE,
    (S.PENDING_REPLACE, E.PARTIAL_FILL): S.PENDING_REPLACE,
    (S.PENDING_REPLACE, E.FILL): S.FILLED,  # it filled first: the replacement is refused
    (S.PENDING_REPLACE, E.REPLACED): S.REPLACED,
    (S.PENDING_REPLACE, E.CANCELED): S.CANCELED,
    (S.PENDING_REPLACE, E.EXPIRED): S.EXPIRED,
    (S.PENDING_REPLACE, E.REJECTED): S.REJECTED,
    (S.PENDING_REPLACE, E.ORDER_REPLACE_REJECTED): REPORTED,  # back to what it was
    # Alpaca takes no cancel while a replace is pending: news of a cancel means the replace
    # was refused first and that frame was lost (or is late): the cancel's status stands.
    (S.PENDING_REPLACE, E.PENDING_CANCEL): S.PENDING_CANCEL,
    (S.PENDING_REPLACE, E.TRADE_BUST): S.PENDING_REPLACE,
    (S.PENDING_REPLACE, E.TRADE_CORRECT): S.PENDING_REPLACE,
    # -- no longer working ----------------------------------------------------------------
    (S.FILLED, E.FILL): S.FILLED,
    (S.FILLED, E.TRADE_BUST): REPORTED,  # the broker reverses an execution
    (S.FILLED, E.TRADE_CORRECT): REPORTED,
    # Surprising but real: the execution happened at the venue before the cancel (or the
    # close) took effect, and its report arrives after the `canceled` / `expired` / even a
    # `rejected`: the fill stands.
    (S.CANCELED, E.CANCELED): S.CANCELED,
    (S.CANCELED, E.PARTIAL_FILL): S.CANCELED,
    (S.CANCELED, E.FILL): S.FILLED,
    (S.CANCELED, E.TRADE_BUST): S.CANCELED,
    (S.CANCELED, E.TRADE_CORRECT): S.CANCELED,
    (S.EXPIRED, E.EXPIRED): S.EXPIRED,
    (S.EXPIRED, E.PARTIAL_FILL): S.EXPIRED,
    (S.EXPIRED, E.FILL): S.FILLED,
    (S.EXPIRED, E.TRADE_BUST): S.EXPIRED,
    (S.EXPIRED, E.TRADE_CORRECT): S.EXPIRED,
    (S.REJECTED, E.REJECTED): S.REJECTED,
    (S.REJECTED, E.PARTIAL_FILL): S.REJECTED,
    (S.REJECTED, E.FILL): S.FILLED,
    # A replaced order may still report an execution that happened before the replace.
    (S.REPLACED, E.REPLACED): S.REPLACED,
    (S.REPLACED, E.PARTIAL_FILL): S.REPLACED,
    (S.REPLACED, E.FILL): S.REPLACED,
    (S.REPLACED, E.TRADE_BUST): S.REPLACED,
    (S.REPLACED, E.TRADE_CORRECT): S.REPLACED,
}

Verdict = Literal["applied", "repeat", "stale", "invalid"]


@dataclass(frozen=True, slots=True)
class Transition:
    """What an event does to an order's status."""

    status: OrderStatus
    verdict: Verdict
    reason: str = ""


def transition(status: str, event: str, reported: str | None = None) -> Transition:
    """Judge ``event`` on an order in ``status`` (``reported``: the broker's status on the
    order object that came with the event). Never raises; see the module docstring."""
    current = OrderStatus(status)
    try:
        key = (current, OrderEvent(event))
    except ValueError:
        return Transition(current, "invalid", f"unknown event {event!r}")
    target = TABLE.get(key)
    if target == REPORTED:
        try:
            reported_status = OrderStatus(reported or "")
        except ValueError:
            return Transition(current, "repeat")  # nothing usable reported: no change
        if PHASE[reported_status] == 0:
            return Transition(current, "invalid", f"broker reported {reported!r}")
        verdict: Verdict = "repeat" if reported_status == current else "applied"
        return Transition(reported_status, verdict)
    if target is not None:
        next_status = OrderStatus(target)
        return Transition(next_status, "repeat" if next_status == current else "applied")
    implied = _EVENT_STATUS.get(key[1])
    if implied is not None and PHASE[implied] < PHASE[current]:
        return Transition(current, "stale", f"{event} after {status}: old news")
    if key[1] in (E.ORDER_CANCEL_REJECTED, E.ORDER_REPLACE_REJECTED) and current in CLOSED:
        return Transition(current, "stale", f"{event} after {status}: the order ended first")
    return Transition(current, "invalid", f"order in status {status!r} cannot take {event!r}")
