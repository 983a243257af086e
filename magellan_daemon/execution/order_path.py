"""The order path to the broker: send, look up, cancel and replace, each until the broker's
own word is known. The only code that calls the broker for orders and account reads.

Every outcome becomes ledger news through the event sink (the one door), never a local
guess:

- ``send``: POST with the deterministic ``client_order_id``. A timeout, 5xx or 429 makes the
  order *unknown*; before anything is sent again it is looked up by ``client_order_id`` (a
  422 "must be unique" means it exists: the lookup applies it). A fresh order is not looked
  up before its first POST: it cannot exist yet.
- ``lookup``: only a definite 404 means "the broker never received it"; a lookup that got a
  429 or timed out says nothing.
- ``cancel``: DELETE, then wait (bounded) for the broker's ``canceled``, or the fill that won
  the race, or its ``order_cancel_rejected``; from the stream, or from a lookup when the
  stream says nothing. The shares stay held until then, so nothing may be sold before.
- ``replace``: PATCH, then wait for the old order's ``replaced`` and the new one's life (or
  the refusal: the new order ``rejected``, the old ``order_replace_rejected`` or filled).
  A ``replaced`` the broker has not reported is never recorded.

Waits are operational time (``clock.Deadline``): short in market time on a fast virtual
clock, and still bounded on a frozen one. ``BrokerFatal`` (401, account blocked) is never
caught here: the caller stops trading.
"""

from __future__ import annotations

import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Generic, TypeVar

from magellan_core.clock import Clock, Deadline, pause
from magellan_daemon.domain import (
    CLOSED,
    EVENT_FOR_STATUS,
    BrokerEvent,
    BrokerOrder,
    ClientOrderId,
    OrderStatus,
)
from magellan_daemon.errors import (
    BrokerDuplicate,
    BrokerNotFound,
    BrokerRejected,
    BrokerRetryable,
)
from magellan_daemon.execution.events import EventSink, order_line
from magellan_daemon.execution.order_watch import OrderWatch, Tracker
from magellan_daemon.execution.ports import Broker
from magellan_daemon.ledger.store import Ledger, OrderRow

log = logging.getLogger(__name__)
T = TypeVar("T")
# The accounts' broker: any ``Broker``; recovery asks for one that also reconciles.
BrokerT_co = TypeVar("BrokerT_co", bound=Broker, covariant=True)
CANCEL_ATTEMPTS = 3


class CancelOutcome(StrEnum):
    """How a cancel ended."""

    CANCELED = "canceled"
    FILLED = "filled"  # the execution won the race: the shares are sold (or bought)
    GONE = "gone"  # it had ended otherwise already (expired, replaced, rejected, never sent)
    REFUSED = "refused"  # the broker refused: the order still works
    UNCONFIRMED = "unconfirmed"  # no word from the broker in time: it may still work


class ReplaceOutcome(StrEnum):
    """How a replace ended."""

    REPLACED = "replaced"
    FILLED = "filled"  # the old order filled first; the replacement was refused
    REFUSED = "refused"  # the old order still works as it was
    UNCONFIRMED = "unconfirmed"


@dataclass(frozen=True, slots=True)
class Lookup:
    """A lookup by client_order_id: the order, or ``missing`` on a definite 404."""

    order: BrokerOrder | None
    missing: bool = False


@dataclass
class PathStats:
    """Counters for the health line and metrics."""

    accepted: int = 0
    rejected: int = 0
    unknown: int = 0  # no answer (5xx, timeout): looked up before any re-send
    submit_seconds: deque[float] = field(default_factory=lambda: deque(maxlen=1000))


class OrderPath(Generic[BrokerT_co]):
    """Sends, looks up, cancels and replaces orders on each account's broker (the port)."""

    def __init__(
        self,
        *,
        ledger: Ledger,
        brokers: Mapping[str, BrokerT_co],
        sink: EventSink,
        watch: OrderWatch,
        clock: Clock,
        attempts: int = 5,
        backoff_seconds: float = 0.5,
        confirm_seconds: float = 60.0,
        poll_seconds: float = 1.0,
    ) -> None:
        self._ledger = ledger
        self._brokers = brokers
        self._sink = sink
        self._watch = watch
        self._clock = clock
        self._attempts = attempts
        self._backoff = backoff_seconds
        self._confirm = confirm_seconds
        self._poll = poll_seconds
        self.in_flight: set[str] = set()  # client_order_ids being sent or replaced right now
        self.stats = PathStats()

    def broker(self, account: str) -> BrokerT_co:
        """The account's broker."""
        return self._brokers[account]

    async def backoff(self, attempt: int) -> None:
        """Jittered exponential backoff before attempt ``attempt + 1`` (operational time)."""
        await pause(self._clock, self._backoff * 2 ** (attempt - 1) * random.uniform(0.5, 1))

    async def read(self, account: str, call: Callable[[BrokerT_co], Awaitable[T]]) -> T:
        """A broker read, retried with backoff on retryable errors (the last one raised)."""
        for attempt in range(1, self._attempts + 1):
            try:
                return await call(self._brokers[account])
            except BrokerRetryable as exc:
                if attempt == self._attempts:
                    raise
                log.debug("read on %s failed (%s): retrying", account, exc)
                await self.backoff(attempt)
        raise AssertionError("unreachable")

    # -- news --------------------------------------------------------------------------

    def apply_order(self, order: BrokerOrder, source: str) -> None:
        """Turn a REST order into the event its status stands for, through the sink."""
        event = EVENT_FOR_STATUS.get(order.status)
        if event is None:
            log.warning("order %s has a status we do not know: %r", order.client_order_id, order)
            return
        self._sink.apply(
            BrokerEvent(
                event=str(event),
                client_order_id=order.client_order_id,
                broker_order_id=order.broker_order_id,
                ts_event=order.updated_at,
                source=source,
                symbol=order.symbol,
                side=order.side,
                cum_filled_qty=order.filled_qty,
                filled_avg_price=order.filled_avg_price,
                replaced_by=order.replaced_by,
                order_status=order.status,
            )
        )

    def mark(self, cid: ClientOrderId, event: str, reason: str = "") -> None:
        """Our own news about an order (``submit_unknown``, ``not_found``, a refusal)."""
        row = self._ledger.order(cid)
        self._sink.apply(
            BrokerEvent(
                event=event,
                client_order_id=cid,
                broker_order_id=None if row is None else row.broker_order_id,  # type: ignore[arg-type]
                ts_event=self._clock.now(),
                source="router" if not reason else f"router: {reason}"[:120],
                reason=reason,
            )
        )

    async def lookup(self, order: OrderRow) -> Lookup:
        """GET by client_order_id, applied as news; ``missing`` only on a definite 404."""
        try:
            found = await self._brokers[order.account].order_by_client_id(order.client_order_id)
        except BrokerNotFound:
            return Lookup(None, missing=True)
        except (BrokerRetryable, BrokerRejected) as exc:
            log.info("lookup of %s said nothing (%s)", order.client_order_id, exc)
            return Lookup(None)
        self.apply_order(found, "lookup")
        return Lookup(found)

    # -- send --------------------------------------------------------------------------

    async def send(self, order: OrderRow) -> OrderRow:
        """Send a ledger order; every failure is "unknown" until a lookup says otherwise.
        Returns the order as the ledger knows it afterwards."""
        cid = order.client_order_id
        self.in_flight.add(cid)
        try:
            await self._send(order)
        finally:
            self.in_flight.discard(cid)
        return self._ledger.order(cid) or order

    async def _send(self, order: OrderRow) -> None:
        broker = self._brokers[order.account]
        for attempt in range(1, self._attempts + 1):
            if attempt > 1:
                found = await self.lookup(order)
                if found.order is not None:
                    return
                if not found.missing:
                    await self.backoff(attempt)
                    continue  # cannot tell whether it exists: never POST blind
            log.info(
                order_line("submit", order, order.qty, order.stop_price),
                extra={"fields": _fields(order, "submit")},
            )
            started = time.monotonic()
            try:
                reply = await broker.submit_order(
                    client_order_id=order.client_order_id,
                    symbol=order.symbol,
                    qty=int(order.qty),
                    side=order.side,
                    order_type=order.order_type,
                    time_in_force=order.time_in_force,
                    stop_price=order.stop_price,
                )
            except BrokerDuplicate:
                continue  # it exists: the lookup at the top of the next attempt applies it
            except BrokerRejected as exc:
                self.stats.rejected += 1
                # The sink logs the refusal with its reason (WARNING for a sell).
                log.debug("rejected  %s: %s", order.client_order_id, exc)
                self.mark(order.client_order_id, "rejected", str(exc))
                return
            except BrokerRetryable as exc:
                self.stats.unknown += 1
                log.warning("submit of %s unknown (%s): looking it up", order.client_order_id, exc)
                self.mark(order.client_order_id, "submit_unknown")
                await self.backoff(attempt)
                continue
            self.stats.accepted += 1
            self.stats.submit_seconds.append(time.monotonic() - started)
            self.apply_order(reply, "submit")
            return
        log.warning(
            "order %s still unknown after %d attempts: the unacknowledged-order check resolves it",
            order.client_order_id,
            self._attempts,
        )

    # -- cancel ------------------------------------------------------------------------

    async def cancel(self, order: OrderRow) -> CancelOutcome:
        """Cancel and wait for the broker's word (see the module docstring)."""
        cid = order.client_order_id
        row = self._ledger.order(cid) or order
        if row.status in CLOSED:
            return _cancel_outcome(row)
        if not row.broker_order_id:
            found = await self.lookup(row)
            if found.missing:
                self.mark(cid, "not_found")
                return CancelOutcome.GONE
            row = self._ledger.order(cid) or row
            if row.status in CLOSED or not row.broker_order_id:
                return _cancel_outcome(row, CancelOutcome.UNCONFIRMED)
        deadline = Deadline(self._clock, self._confirm)
        with self._watch.track(cid) as news:
            for attempt in range(1, CANCEL_ATTEMPTS + 1):
                sent = await self._request_cancel(row)
                if isinstance(sent, CancelOutcome):
                    return sent
                if sent:
                    return await self._await_cancel(row, news, deadline)
                await self.backoff(attempt)
        return CancelOutcome.UNCONFIRMED

    async def _request_cancel(self, row: OrderRow) -> CancelOutcome | bool:
        """DELETE once: True when the broker took the request, False to try again, or the
        outcome when the order's state already decides it."""
        cid = row.client_order_id
        try:
            await self._brokers[row.account].cancel_order(row.broker_order_id or "")
            return True
        except BrokerNotFound:
            await self.lookup(row)
            return _cancel_outcome(self._ledger.order(cid) or row, CancelOutcome.GONE)
        except BrokerRejected as exc:
            # 422: it ended already, or a cancel/replace is pending: its state tells.
            log.info("cancel of %s refused (%s): reading its state", cid, exc)
            refused: CancelOutcome | bool = CancelOutcome.REFUSED
        except BrokerRetryable as exc:
            log.info("cancel of %s unknown (%s): reading its state", cid, exc)
            refused = False
        await self.lookup(row)
        now = self._ledger.order(cid) or row
        if now.status in CLOSED:
            return _cancel_outcome(now)
        return True if now.status == OrderStatus.PENDING_CANCEL else refused

    async def _await_cancel(
        self, row: OrderRow, news: Tracker, deadline: Deadline
    ) -> CancelOutcome:
        cid = row.client_order_id
        accepted_at = time.monotonic()
        while True:
            row = self._ledger.order(cid) or row
            if row.status in CLOSED:
                return _cancel_outcome(row)
            if news.saw("order_cancel_rejected"):
                return CancelOutcome.REFUSED
            if deadline.expired():
                await self.lookup(row)
                return _cancel_outcome(self._ledger.order(cid) or row, CancelOutcome.UNCONFIRMED)
            if await news.wait(min(self._poll, deadline.remaining())):
                continue
            # No word on the stream: ask. Still working and not pending a cancel a while
            # after the DELETE was taken means the refusal's event was lost.
            await self.lookup(row)
            row = self._ledger.order(cid) or row
            working = row.status not in CLOSED and row.status != OrderStatus.PENDING_CANCEL
            if working and time.monotonic() - accepted_at >= self._poll:
                return CancelOutcome.REFUSED

    # -- replace -----------------------------------------------------------------------

    async def replace(
        self, old: OrderRow, new: OrderRow, *, qty: int, stop_price: Decimal | None
    ) -> ReplaceOutcome:
        """Replace ``old`` by ``new`` (a row already written ``pending_submit``) and wait for
        the broker's word (see the module docstring)."""
        old_cid, new_cid = old.client_order_id, new.client_order_id
        broker = self._brokers[old.account]
        self.in_flight.add(new_cid)
        try:
            with self._watch.track(old_cid, new_cid) as news:
                try:
                    reply = await broker.replace_order(
                        old.broker_order_id or "",
                        qty=qty,
                        stop_price=stop_price,
                        client_order_id=new_cid,
                    )
                except BrokerRejected as exc:
                    log.warning("replace of %s refused: %s", old_cid, exc)
                    self.mark(new_cid, "rejected", str(exc))
                    await self.lookup(old)
                    return _replace_outcome(self._ledger.order(old_cid) or old)
                except BrokerRetryable as exc:
                    log.warning("replace of %s unknown (%s): looking it up", old_cid, exc)
                    self.mark(new_cid, "submit_unknown")
                    found = await self.lookup(new)
                    if found.missing:
                        self.mark(new_cid, "not_found")
                        await self.lookup(old)
                        return _replace_outcome(self._ledger.order(old_cid) or old)
                else:
                    self.apply_order(reply, "submit")
                return await self._await_replace(old, new, news)
        finally:
            self.in_flight.discard(new_cid)

    async def _await_replace(self, old: OrderRow, new: OrderRow, news: Tracker) -> ReplaceOutcome:
        old_cid, new_cid = old.client_order_id, new.client_order_id
        deadline = Deadline(self._clock, self._confirm)
        while True:
            before = self._ledger.order(old_cid) or old
            after = self._ledger.order(new_cid) or new
            if before.status == OrderStatus.FILLED:
                return ReplaceOutcome.FILLED
            refused = news.saw("order_replace_rejected")
            if after.status in (OrderStatus.REJECTED, OrderStatus.NOT_FOUND) or refused:
                return ReplaceOutcome.REFUSED
            if before.status == OrderStatus.REPLACED and after.status not in (
                OrderStatus.PENDING_SUBMIT,
                OrderStatus.UNKNOWN,
            ):
                return ReplaceOutcome.REPLACED
            if before.status in CLOSED:  # canceled or expired meanwhile: nothing was replaced
                return ReplaceOutcome.REFUSED
            if deadline.expired():
                await self.lookup(before)
                await self.lookup(after)
                before = self._ledger.order(old_cid) or old
                if before.status == OrderStatus.REPLACED:
                    return ReplaceOutcome.REPLACED
                return ReplaceOutcome.UNCONFIRMED
            remaining = min(self._poll, deadline.remaining())
            if not await news.wait(remaining):
                await self.lookup(before)
                await self.lookup(after)


def _cancel_outcome(row: OrderRow, otherwise: CancelOutcome = CancelOutcome.GONE) -> CancelOutcome:
    if row.status == OrderStatus.CANCELED:
        return CancelOutcome.CANCELED
    if row.status == OrderStatus.FILLED:
        return CancelOutcome.FILLED
    if row.status in CLOSED:
        return CancelOutcome.GONE
    return otherwise


def _replace_outcome(old: OrderRow) -> ReplaceOutcome:
    return ReplaceOutcome.FILLED if old.status == OrderStatus.FILLED else ReplaceOutcome.REFUSED


def _fields(order: OrderRow, event: str) -> dict[str, object]:
    return {
        "STRATEGY": order.strategy,
        "SYMBOL": order.symbol,
        "CLIENT_ORDER_ID": order.client_order_id,
        "EVENT": event,
    }


def _extra(order: OrderRow, event: str) -> dict[str, object]:
    return {"fields": _fields(order, event)}
