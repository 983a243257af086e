"""Cancels and replaces in flight (alpaca-wire 2.7, 2.8).

At Alpaca a DELETE or PATCH is only a request: the answer (204, or the new order) comes at
once, the order goes ``pending_cancel`` / ``pending_replace``, and the venue confirms later.
Until then the order still works: it may fill, and the cancel or replace then fails. This
module holds what is in flight and when it completes, and the rules for which statuses a
cancel or a replace may start from; the exchange applies the outcomes.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime

from magellan_sim.exchange.orders import Order

CANCEL = "cancel"
REPLACE = "replace"
# A cancel or a replace must wait for the one in flight; the replacement itself is not live
# before the replace completes, so it cannot be canceled or replaced either.
IN_FLIGHT = frozenset({"pending_cancel", "pending_replace", "pending_new"})


@dataclass(slots=True, kw_only=True)
class Pending:
    """One cancel or replace accepted at the API and not yet effective."""

    kind: str  # CANCEL or REPLACE
    account_key: str
    order_id: str  # the order canceled, or the old order of a replace
    due: datetime
    previous_status: str  # what the order returns to if the venue refuses
    new_order_id: str | None = None  # a replace's new order
    refused: bool = False  # decided on acceptance (a fault): refused when due
    seq: int = field(default=0, compare=False)


def cancel_refusal(order: Order) -> str | None:
    """The 422 message refusing to cancel ``order``, or None if it may be canceled."""
    if not order.is_open or order.status in IN_FLIGHT:
        return f'order is already in "{order.status}" state'
    return None


def replace_refusal(order: Order) -> str | None:
    """The 422 message refusing to replace ``order``, or None if it may be replaced: it must
    be live at the venue (not waiting for the open) with nothing else in flight."""
    if not order.is_open or order.status in IN_FLIGHT:
        return f'order is already in "{order.status}" state'
    if order.active_from is None:
        return f'order is in "{order.status}" state and cannot be replaced before it is live'
    return None


class PendingBook:
    """The in-flight actions, at most one per order, completed in (due, arrival) order."""

    def __init__(self) -> None:
        self._by_order: dict[str, Pending] = {}
        self._counter = itertools.count()

    def add(self, action: Pending) -> None:
        """Record ``action``; raises ValueError if its order already has one in flight."""
        if action.order_id in self._by_order:
            raise ValueError(f"order {action.order_id} already has a {action.kind} in flight")
        action.seq = next(self._counter)
        self._by_order[action.order_id] = action

    def get(self, order_id: str) -> Pending | None:
        """The action in flight for ``order_id``, if any."""
        return self._by_order.get(order_id)

    def pop(self, order_id: str) -> Pending | None:
        """Remove and return the action in flight for ``order_id``, if any."""
        return self._by_order.pop(order_id, None)

    def next_due(self) -> datetime | None:
        """When the earliest action completes, None when nothing is in flight."""
        return min((a.due for a in self._by_order.values()), default=None)

    def take_due(self, t: datetime) -> list[Pending]:
        """Remove and return every action due at or before ``t``, in completion order."""
        due = sorted(
            (a for a in self._by_order.values() if a.due <= t), key=lambda a: (a.due, a.seq)
        )
        for action in due:
            del self._by_order[action.order_id]
        return due

    def __len__(self) -> int:
        return len(self._by_order)
