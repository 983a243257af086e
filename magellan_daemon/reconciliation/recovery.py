"""Recovery: everything that brings the ledger back to the broker's truth, around the pure
diff in ``reconcile``.

- ``reconcile(account)``: the broker's orders, fills and positions against the ledger; the
  repairs applied through the event sink, the rest reported. Run at startup, after every
  (re)connect of the trade stream (scheduled, never awaited by the stream consumer) and
  whenever the open-order poll finds the stream silent. Retried with backoff (tenacity).
- ``resolve_unacked``: orders the broker never answered (a submit that crashed, timed out, or
  a replacement in doubt) are looked up by ``client_order_id``; only a definite 404 makes one
  ``not_found``. A not-found order whose intent was a next-open order still inside its
  session goes back to pending and is sent again (through the gates) by the next pending
  run; any other is reported to its strategy, which decides again.
- ``poll_open_orders``: the broker's open orders every few seconds; a change the stream
  never told us about means the socket is connected but silent: repaired here, reported, and
  the stream is made to reconnect.
- ``watch_positions``: the broker's positions; a difference from the ledger seen on two reads
  in a row (a fill is briefly at the broker before its event is here) is a DISCREPANCY.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal

from magellan_core.clock import Clock
from magellan_daemon.domain import BrokerPosition, ClientOrderId, OrderStatus, is_open
from magellan_daemon.errors import (
    BrokerError,
    BrokerFatal,
    BrokerNotFound,
    BrokerRetryable,
)
from magellan_daemon.execution.events import EventSink
from magellan_daemon.execution.order_path import OrderPath
from magellan_daemon.execution.ports import ReconcilingBroker
from magellan_daemon.execution.retrying import retried
from magellan_daemon.ledger.store import Ledger, OrderRow
from magellan_daemon.reconciliation.reconcile import BrokerSnapshot, position_diff, reconcile
from magellan_daemon.tasks import spawn

log = logging.getLogger(__name__)
RECONCILE_LOOKBACK = timedelta(days=7)
RECONCILE_ATTEMPTS = 4  # whole reconciliations; each read inside is retried as well
PRE_BROKER = frozenset({OrderStatus.PENDING_SUBMIT, OrderStatus.UNKNOWN})


class Recovery:
    """The reconciliation shell of every account."""

    def __init__(
        self,
        *,
        ledger: Ledger,
        path: OrderPath[ReconcilingBroker],
        sink: EventSink,
        clock: Clock,
        accounts: list[str],
        reconnect: Callable[[str], Awaitable[None]],
    ) -> None:
        self._ledger = ledger
        self._path = path
        self._sink = sink
        self._clock = clock
        self._accounts = accounts
        self._reconnect = reconnect
        self._running: dict[str, asyncio.Task[int]] = {}
        self._again: set[str] = set()
        self.reconciled: dict[str, asyncio.Event] = {a: asyncio.Event() for a in accounts}
        self._suspects: dict[str, set[tuple[str, str]]] = {}
        self._reported: set[tuple[str, str]] = set()
        self.silent_repairs = 0
        # Splits read for today that the ledger has not applied yet (symbol -> ratio): the
        # corporate-action watch sets this; a broker position they explain is no discrepancy.
        self.pending_splits: Callable[[], Mapping[str, Decimal]] = dict
        # Told (never awaited) when the position watch first sees a difference: a split the
        # broker applied overnight is looked up and applied before the second read reports.
        self.on_position_difference: Callable[[str], None] | None = None

    # -- reconciliation ----------------------------------------------------------------

    def schedule(self, account: str) -> None:
        """Reconcile ``account`` soon, in its own task (the trade stream's on-connect hook:
        it never waits). A request while one runs makes it run once more afterwards."""
        task = self._running.get(account)
        if task is not None and not task.done():
            self._again.add(account)
            return
        self._running[account] = spawn(
            self._reconcile_until_done(account), name=f"reconcile-{account}"
        )

    async def settle(self, account: str) -> None:
        """Wait for the reconciliation the stream's connection scheduled (schedule one if
        none is running); raise ``BrokerError`` if it could not be done."""
        task = self._running.get(account)
        if task is None or (task.done() and not self.reconciled[account].is_set()):
            self.schedule(account)
            task = self._running[account]
        await asyncio.shield(task)
        if not self.reconciled[account].is_set():
            raise BrokerError(f"reconciliation of {account} failed: the broker cannot be read")

    async def _reconcile_until_done(self, account: str) -> int:
        applied = 0
        while True:
            try:
                applied += await self.reconcile_with_retry(account)
            except BrokerRetryable as exc:
                log.error(
                    "reconciliation of %s failed %d times (%s): the open-order poll tries again",
                    account,
                    RECONCILE_ATTEMPTS,
                    exc,
                )
                self._again.discard(account)
                return applied
            self.reconciled[account].set()
            if account not in self._again:
                return applied
            self._again.discard(account)

    async def reconcile_with_retry(self, account: str) -> int:
        """``reconcile`` retried with jittered backoff on retryable broker errors."""
        return await retried(
            self._clock,
            lambda: self.reconcile(account),
            attempts=RECONCILE_ATTEMPTS,
            first_wait=0.5,
            max_wait=8.0,
        )

    async def reconcile(self, account: str) -> int:
        """Diff ledger and broker for one account; apply the repairs; report the rest.
        Returns how many repairs changed the ledger."""
        now = self._clock.now()
        # The ledger is read BEFORE the broker: a fill the stream applies meanwhile is in the
        # broker's snapshot and counted as missed against this view, and applying it again
        # is a no-op (fills are deduplicated), so nothing is reported twice or missed. An
        # order a lane writes meanwhile is judged ours by a second read (_written_since).
        open_orders = self._ledger.orders(account=account, open_only=True)
        since = min([o.created_at for o in open_orders] + [now - RECONCILE_LOOKBACK])
        orders = [
            o
            for o in self._ledger.orders(account=account)
            if o.created_at >= since - timedelta(days=1)
        ]
        net = self._ledger.net_positions(account)
        snapshot = await self._snapshot(account, since - timedelta(minutes=1), open_orders)
        derived = self._ledger.derived_fills(account)
        result = reconcile(
            orders,
            net,
            snapshot,
            now,
            derived,
            self._written_since(orders, snapshot),
            self.pending_splits(),
        )
        repaired = 0
        for event in result.events:
            if event.event == "not_found":
                self._not_found(event.client_order_id)
                repaired += 1
                continue
            applied = self._sink.apply(event)  # the stream may have told us meanwhile
            repaired += applied.status_changed or applied.fill is not None or applied.restated
        positions = [d for d in result.discrepancies if d.kind.endswith("_position")]
        for discrepancy in result.discrepancies:
            if discrepancy not in positions:
                self._sink.discrepancy(discrepancy)
        # Position differences wait for the position watch's second read to be reported: a
        # fill between the two reads of the snapshot is not a discrepancy.
        self._suspects.setdefault(account, set()).update((d.symbol, d.detail) for d in positions)
        log.info(
            "reconciled %s: %d repairs applied, %d discrepancies",
            account,
            repaired,
            len(result.discrepancies) - len(positions),
        )
        return repaired

    def _written_since(
        self, orders: list[OrderRow], snapshot: BrokerSnapshot
    ) -> frozenset[ClientOrderId]:
        """The broker's orders missing from the ledger read taken before the snapshot that the
        ledger has now: a lane wrote (and sent) them during the snapshot's awaits. Asked
        only for those few, so an order is foreign only if the ledger never heard of it."""
        read = {o.client_order_id for o in orders}
        return frozenset(
            cid
            for cid, broker in snapshot.orders.items()
            if cid not in read and is_open(broker.status) and self._ledger.order(cid) is not None
        )

    async def _snapshot(
        self, account: str, since: datetime, open_orders: list[OrderRow]
    ) -> BrokerSnapshot:
        # Each read is retried on its own: one 503 must not throw the whole snapshot away.
        read = self._path.read
        orders = await read(account, lambda b: b.orders_since(since))
        by_cid = {o.client_order_id: o for o in orders}
        not_found: set[ClientOrderId] = set()
        for row in open_orders:
            cid = row.client_order_id
            if cid in by_cid or cid in self._path.in_flight:
                continue
            try:
                found = await read(account, lambda b, cid=cid: b.order_by_client_id(cid))
                by_cid[found.client_order_id] = found
            except BrokerNotFound:
                not_found.add(cid)
        fills = await read(account, lambda b: b.fill_activities(since))
        positions = await read(account, lambda b: b.positions())
        return BrokerSnapshot(
            account=account,
            orders=by_cid,
            not_found=frozenset(not_found),
            fills=fills,
            positions=positions,
        )

    # -- orders the broker never answered ----------------------------------------------

    async def resolve_unacked(self, account: str) -> int:
        """Look up every order still waiting for the broker's answer (unless a submit or
        replace of it is in flight right now). Returns how many were looked up."""
        stale = [
            row
            for row in self._ledger.orders(account=account, open_only=True)
            if row.status in PRE_BROKER and row.client_order_id not in self._path.in_flight
        ]
        for row in stale:
            found = await self._path.lookup(row)
            if found.missing:
                self._not_found(row.client_order_id)
        return len(stale)

    def _not_found(self, cid: ClientOrderId) -> None:
        """The broker never received this order (a definite 404)."""
        row = self._ledger.order(cid)
        if row is None or row.status not in PRE_BROKER:
            return
        now = self._clock.now()
        intent = None if row.intent_id is None else self._ledger.intent(row.intent_id)
        if (
            intent is not None
            and intent.intent.execute == "next_open"
            and (intent.expires_at is None or now < intent.expires_at)
        ):
            # Its strategy cannot decide it again before the next signal: send it again,
            # through the gates, at the next pending run, inside the session it was meant for.
            self._ledger.set_intent_status(
                intent.id, "pending", "the broker never received it: sent again", now
            )
            log.warning("%s never reached the broker: queued to be sent again", cid)
            self._path.mark(cid, "not_found")
            return
        if row.intent_id is not None:
            self._ledger.set_intent_status(
                row.intent_id, "failed", "the broker never received it", now
            )
        log.warning("%s never reached the broker: its strategy decides again", cid)
        self._path.mark(cid, "not_found")  # the sink tells the strategy ("rejected")

    # -- a connected but silent stream -------------------------------------------------

    async def poll_open_orders(self, account: str) -> int:
        """Compare the broker's open orders with the ledger's; apply what the stream did not
        say. Returns how many orders had news the stream never delivered."""
        broker = self._path.broker(account)
        before = {
            o.client_order_id: o for o in self._ledger.orders(account=account, open_only=True)
        }
        open_at_broker = {o.client_order_id: o for o in await broker.open_orders()}
        missed = 0
        for cid, row in before.items():
            if row.status in PRE_BROKER or cid in self._path.in_flight:
                continue
            found = open_at_broker.get(cid)
            if found is None:
                try:
                    found = await broker.order_by_client_id(cid)
                except BrokerNotFound:
                    continue
            if found.status != row.status or found.filled_qty != row.filled_qty:
                self._path.apply_order(found, "poll")
                after = self._ledger.order(cid)
                if after is not None and (
                    after.status != row.status or after.filled_qty != row.filled_qty
                ):
                    missed += 1
        if missed:
            self.silent_repairs += missed
            log.warning(
                "trade stream of %s missed news on %d orders (repaired from REST): reconnecting it",
                account,
                missed,
            )
            await self._reconnect(account)
        return missed

    # -- positions ---------------------------------------------------------------------

    def watch_positions(self, account: str, positions: list[BrokerPosition]) -> None:
        """Report a difference between broker and ledger positions seen on two reads in a
        row (positions changed outside Magellan: a manual trade, a corporate action)."""
        found = {
            (d.symbol, d.detail): d
            for d in position_diff(
                account, self._ledger.net_positions(account), positions, self.pending_splits()
            )
        }
        seen_before = self._suspects.get(account, set())
        if self.on_position_difference is not None and set(found) - seen_before:
            self.on_position_difference(account)
        for key, discrepancy in found.items():
            if key in seen_before and key not in self._reported:
                self._reported.add(key)
                self._sink.discrepancy(discrepancy)
        self._suspects[account] = set(found)

    async def forever(self, every: float, step: Callable[[str], Awaitable[object]], what: str):
        """Run ``step`` for every account every ``every`` wall seconds; a failure is logged
        (the next round tries again)."""
        while True:
            await asyncio.sleep(every)
            for account in self._accounts:
                try:
                    await step(account)
                except BrokerFatal:
                    raise  # ends the task: the daemon stops entries and exits with code 3
                except BrokerError as exc:
                    log.warning("%s of %s failed: %s", what, account, exc)
