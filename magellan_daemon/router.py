"""The order router: the only code that sends anything to the broker.

For each intent, in the order a strategy emitted them:

- entries pass the strategy's gates (halt, positions, trades per day, daily loss, dollar cap),
  sizing and buying power (pure code from ``strategies``); exits, stop resizing and cancels
  skip the gates: a halt blocks new positions, never the way out;
- a sell is never larger than the strategy's own ledger position, so two strategies sharing
  a symbol on one account never touch each other's shares;
- the ``client_order_id`` comes from (strategy, symbol, signal time, leg) and the order is
  written to the ledger as ``pending_submit`` BEFORE the HTTP call;
- a failed or timed-out submit is "unknown": the order is looked up by ``client_order_id``
  before anything is re-sent (with backoff); a 422 "must be unique" means it exists.

Intents of one symbol run one after another under a per-(account, symbol) lock (a stop must
be reduced before the sell it makes room for); different symbols run concurrently and one
symbol's failure never stops another's.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TypeVar

from magellan_daemon.broker.errors import (
    BrokerDuplicate,
    BrokerError,
    BrokerNotFound,
    BrokerRejected,
    BrokerRetryable,
)
from magellan_daemon.broker.rest import AlpacaBroker
from magellan_daemon.clock import Clock
from magellan_daemon.domain import (
    BrokerEvent,
    BrokerOrder,
    BrokerPosition,
    ClientOrderId,
    client_order_id,
)
from magellan_daemon.events import EventSink, order_line
from magellan_daemon.ledger.order_fsm import EVENT_FOR_STATUS
from magellan_daemon.ledger.store import Ledger, OrderRow, session_date
from magellan_daemon.reconcile import BrokerSnapshot
from strategies.model import Intent
from strategies.params import RiskLimits
from strategies.risk import StrategyBook, check_buying_power, check_entry, check_liquidity
from strategies.sizing import shares_for

log = logging.getLogger(__name__)
T = TypeVar("T")
STOP_LEG = "protective_stop"


@dataclass(frozen=True, slots=True, kw_only=True)
class StrategyRouting:
    """What the router needs to know about one strategy."""

    account: str
    limits: RiskLimits
    max_spread_pct: float | None = None
    min_liquidity_shares: float | None = None


@dataclass
class RouterStats:
    """Counters for the health line and metrics."""

    submitted: int = 0
    rejected: int = 0
    blocked: int = 0
    unknown: int = 0
    in_flight: int = 0
    submit_seconds: deque[float] = field(default_factory=lambda: deque(maxlen=1000))


class OrderRouter:
    """Sends intents to the broker of each strategy's account."""

    def __init__(
        self,
        *,
        ledger: Ledger,
        brokers: Mapping[str, AlpacaBroker],
        sink: EventSink,
        clock: Clock,
        routing: Mapping[str, StrategyRouting],
        submit_attempts: int = 5,
        backoff_seconds: float = 0.5,
    ) -> None:
        self._ledger = ledger
        self._brokers = brokers
        self._sink = sink
        self._clock = clock
        self._routing = routing
        self._attempts = submit_attempts
        self._backoff = backoff_seconds
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._sending: set[str] = set()  # client_order_ids with a submit in flight
        self.stats = RouterStats()

    # -- intents -------------------------------------------------------------------------

    async def execute(self, intents: Sequence[Intent], intent_ids: Sequence[int | None] = ()):
        """Execute intents: per symbol in order, symbols concurrently."""
        ids = list(intent_ids) or [None] * len(intents)
        by_symbol: dict[tuple[str, str], list[tuple[Intent, int | None]]] = {}
        for intent, intent_id in zip(intents, ids, strict=True):
            by_symbol.setdefault((intent.strategy, intent.symbol), []).append((intent, intent_id))
        await asyncio.gather(*(self._run_lane(lane) for lane in by_symbol.values()))

    async def _run_lane(self, lane: list[tuple[Intent, int | None]]) -> None:
        for intent, intent_id in lane:
            routing = self._routing[intent.strategy]
            lock = self._locks.setdefault((routing.account, intent.symbol), asyncio.Lock())
            try:
                async with lock:
                    self.stats.in_flight += 1
                    try:
                        await self._execute_one(intent, intent_id, routing)
                    finally:
                        self.stats.in_flight -= 1
            except Exception as exc:
                # One symbol's failure never stops another's; the rest of this lane is
                # skipped because its steps depend on each other (stop before sell).
                if isinstance(exc, BrokerError):
                    log.error(
                        "intent %s %s %s failed: %s",
                        intent.strategy,
                        intent.symbol,
                        intent.leg,
                        exc,
                    )
                else:
                    log.exception(
                        "intent %s %s %s failed", intent.strategy, intent.symbol, intent.leg
                    )
                self._mark(intent_id, "failed", f"{type(exc).__name__}: {exc}"[:300])
                await self._sink.not_sent(intent, self._clock.now())
                return

    async def _execute_one(
        self, intent: Intent, intent_id: int | None, routing: StrategyRouting
    ) -> None:
        if intent.action == "buy":
            await self._entry(intent, intent_id, routing)
        elif intent.action == "sell":
            await self._exit(intent, intent_id, routing)
        elif intent.action == "place_stop":
            await self._place_stop(intent, intent_id, routing)
        elif intent.action == "replace_stop":
            await self._replace_stop(intent, intent_id, routing)
        elif intent.action == "cancel_stop":
            await self._cancel_stop(intent, intent_id, routing)
        else:
            raise ValueError(f"unknown intent action {intent.action!r}")

    def _mark(self, intent_id: int | None, status: str, reason: str) -> None:
        if intent_id is not None:
            self._ledger.set_intent_status(intent_id, status, reason, self._clock.now())

    async def _blocked(self, intent: Intent, intent_id: int | None, reason: str) -> None:
        self.stats.blocked += 1
        log.info(
            "blocked   %-12s %-6s %s: %s",
            intent.strategy,
            intent.symbol,
            intent.leg,
            reason,
            extra={
                "fields": {"STRATEGY": intent.strategy, "SYMBOL": intent.symbol, "EVENT": "blocked"}
            },
        )
        self._mark(intent_id, "blocked", reason)
        await self._sink.not_sent(intent, self._clock.now())

    async def _read(self, call: Callable[[], Awaitable[T]]) -> T:
        """A broker read, retried with jittered backoff on retryable errors."""
        for attempt in range(1, self._attempts + 1):
            try:
                return await call()
            except BrokerRetryable:
                if attempt == self._attempts:
                    raise
                await asyncio.sleep(self._backoff * 2 ** (attempt - 1) * random.uniform(0.5, 1))
        raise AssertionError("unreachable")

    # -- entries and exits ---------------------------------------------------------------

    async def _entry(self, intent: Intent, intent_id: int | None, routing: StrategyRouting) -> None:
        broker = self._brokers[routing.account]
        now = self._clock.now()
        account = await self._read(broker.account_info)
        price = _reference_price(intent)
        qty = intent.qty if intent.qty is not None else 0
        if intent.sizing is not None:
            qty = shares_for(intent.sizing, float(account.equity))
        today = session_date(now)
        book = StrategyBook(
            open_positions={p.symbol: int(p.qty) for p in self._ledger.positions(intent.strategy)},
            entries_today=self._ledger.entries_on(intent.strategy, today),
            realised_pnl_today=float(self._ledger.realized_on(intent.strategy, today)),
        )
        if self._has_open(intent.strategy, intent.symbol, "buy"):
            await self._blocked(intent, intent_id, "an entry order is already open")
            return
        gate = check_entry(
            routing.limits,
            book,
            intent.symbol,
            qty,
            price,
            self._ledger.halted(intent.strategy),
        )
        if gate.allowed:
            gate = check_buying_power(gate.qty, price, float(account.buying_power))
        if gate.allowed and routing.max_spread_pct is not None:
            quote = await broker.latest_quote(intent.symbol)
            if quote is not None:
                liquidity = check_liquidity(
                    quote.bid,
                    quote.ask,
                    quote.bid_size,
                    quote.ask_size,
                    routing.max_spread_pct,
                    routing.min_liquidity_shares or 0,
                )
                if not liquidity.allowed:
                    gate = liquidity
        if not gate.allowed:
            await self._blocked(intent, intent_id, gate.reason)
            return
        await self._submit_new(intent, intent_id, routing, "buy", gate.qty, "market", "day")

    async def _exit(self, intent: Intent, intent_id: int | None, routing: StrategyRouting) -> None:
        held = int(self._ledger.position_qty(intent.strategy, intent.symbol))
        pending = sum(
            int(o.qty - o.filled_qty)
            for o in self._ledger.orders(
                strategy=intent.strategy, symbol=intent.symbol, open_only=True
            )
            if o.side == "sell" and o.leg != STOP_LEG
        )
        qty = min(intent.qty or 0, held - pending)
        if qty <= 0:
            await self._blocked(
                intent, intent_id, f"nothing to sell (holds {held}, selling {pending})"
            )
            return
        await self._submit_new(intent, intent_id, routing, "sell", qty, "market", "day")

    def _has_open(self, strategy: str, symbol: str, side: str) -> bool:
        return any(
            o.side == side and o.leg != STOP_LEG
            for o in self._ledger.orders(strategy=strategy, symbol=symbol, open_only=True)
        )

    # -- the protective stop -------------------------------------------------------------

    def _open_stop(self, strategy: str, symbol: str) -> OrderRow | None:
        stops = [
            o
            for o in self._ledger.orders(strategy=strategy, symbol=symbol, open_only=True)
            if o.leg == STOP_LEG
        ]
        return stops[-1] if stops else None

    async def _place_stop(self, intent: Intent, intent_id: int | None, routing: StrategyRouting):
        if self._open_stop(intent.strategy, intent.symbol) is not None:
            await self._replace_stop(intent, intent_id, routing)
            return
        held = int(self._ledger.position_qty(intent.strategy, intent.symbol))
        qty = min(intent.qty or 0, held)
        if qty <= 0:
            await self._blocked(intent, intent_id, f"no shares to protect (holds {held})")
            return
        await self._submit_new(
            intent,
            intent_id,
            routing,
            "sell",
            qty,
            "stop",
            "gtc",
            stop_price=_cents(intent.stop_price),
        )

    async def _replace_stop(self, intent: Intent, intent_id: int | None, routing: StrategyRouting):
        current = self._open_stop(intent.strategy, intent.symbol)
        if current is None:
            if (intent.qty or 0) > 0:
                await self._place_stop(intent, intent_id, routing)
            return
        if not current.broker_order_id:
            await self._resolve(current, routing.account)
            current = self._ledger.order(current.client_order_id) or current
        qty = int(intent.qty or 0)
        stop_price = _cents(intent.stop_price) if intent.stop_price else current.stop_price
        if qty <= 0:
            await self._cancel(current, routing.account)
            self._mark(intent_id, "sent", "stop canceled (no shares left)")
            return
        if qty == int(current.qty - current.filled_qty) and stop_price == current.stop_price:
            self._mark(intent_id, "sent", "stop unchanged")
            return
        new_cid = self._next_stop_id(intent)
        now = self._clock.now()
        self._ledger.create_order(
            client_order_id=new_cid,
            account=routing.account,
            strategy=intent.strategy,
            symbol=intent.symbol,
            side="sell",
            order_type="stop",
            qty=Decimal(qty),
            stop_price=stop_price,
            time_in_force="gtc",
            leg=STOP_LEG,
            signal_time=intent.signal_time,
            intent_id=intent_id,
            replaces=current.client_order_id,
            now=now,
        )
        broker = self._brokers[routing.account]
        try:
            replacement = await broker.replace_order(
                current.broker_order_id or "",
                qty=qty,
                stop_price=stop_price,
                client_order_id=new_cid,
            )
        except BrokerRejected as exc:
            await self._sink.apply(_status_event("rejected", new_cid, None, now))
            log.warning("replace of %s refused: %s", current.client_order_id, exc)
            self._mark(intent_id, "failed", f"replace refused: {exc}")
            return
        except BrokerRetryable:
            await self._sink.apply(_status_event("submit_unknown", new_cid, None, now))
            await self._resolve(self._ledger.order(new_cid), routing.account)
            self._mark(intent_id, "sent", "replace outcome looked up")
            return
        await self._apply_order(replacement, "submit")
        await self._sink.apply(
            _status_event("replaced", current.client_order_id, current.broker_order_id, now)
        )
        self._mark(intent_id, "sent", "")

    def _next_stop_id(self, intent: Intent) -> ClientOrderId:
        base = client_order_id(intent.strategy, intent.symbol, intent.signal_time, "ps")
        return client_order_id(
            intent.strategy,
            intent.symbol,
            intent.signal_time,
            "ps",
            seq=self._ledger.count_orders_like(base) + 1,
        )

    async def _cancel_stop(self, intent: Intent, intent_id: int | None, routing: StrategyRouting):
        current = self._open_stop(intent.strategy, intent.symbol)
        if current is None:
            self._mark(intent_id, "sent", "no open stop")
            return
        await self._cancel(current, routing.account)
        self._mark(intent_id, "sent", "")

    async def _cancel(self, order: OrderRow, account: str) -> None:
        broker = self._brokers[account]
        if not order.broker_order_id:
            await self._resolve(order, account)
            order = self._ledger.order(order.client_order_id) or order
            if not order.broker_order_id:
                return
        try:
            await broker.cancel_order(order.broker_order_id)
        except BrokerRejected as exc:
            log.info("cancel of %s refused (%s): reading its state", order.client_order_id, exc)
        await self._resolve(order, account)

    # -- sending -------------------------------------------------------------------------

    async def _submit_new(
        self,
        intent: Intent,
        intent_id: int | None,
        routing: StrategyRouting,
        side: str,
        qty: int,
        order_type: str,
        time_in_force: str,
        stop_price: Decimal | None = None,
    ) -> None:
        leg = "ps" if intent.leg == STOP_LEG else intent.leg
        cid = client_order_id(intent.strategy, intent.symbol, intent.signal_time, leg)
        if order_type == "stop":
            cid = self._next_stop_id(intent)
        order = self._ledger.order(cid)
        if order is not None and order.status not in ("pending_submit", "unknown", "not_found"):
            log.info("order %s already exists (%s): not sent again", cid, order.status)
            self._mark(intent_id, "sent", f"already {order.status}")
            return
        if order is None:
            order = self._ledger.create_order(
                client_order_id=cid,
                account=routing.account,
                strategy=intent.strategy,
                symbol=intent.symbol,
                side=side,
                order_type=order_type,
                qty=Decimal(qty),
                stop_price=stop_price,
                time_in_force=time_in_force,
                leg=intent.leg,
                signal_time=intent.signal_time,
                intent_id=intent_id,
                replaces=None,
                now=self._clock.now(),
            )
        await self.send(order)
        self._mark(intent_id, "sent", "")

    async def send(self, order: OrderRow) -> None:
        """Send a ledger order, treating every failure as "unknown" until looked up."""
        self._sending.add(order.client_order_id)
        try:
            await self._send(order)
        finally:
            self._sending.discard(order.client_order_id)

    async def _send(self, order: OrderRow) -> None:
        broker = self._brokers[order.account]
        for attempt in range(1, self._attempts + 1):
            if attempt > 1 or order.status in ("unknown", "pending_submit"):
                found = await self._lookup(order, order.account)
                if found is not None:
                    return
            log.info(
                order_line("submit", order, order.qty, order.stop_price),
                extra={
                    "fields": {
                        "STRATEGY": order.strategy,
                        "SYMBOL": order.symbol,
                        "CLIENT_ORDER_ID": order.client_order_id,
                        "EVENT": "submit",
                    }
                },
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
                log.warning("rejected  %s: %s", order.client_order_id, exc)
                await self._sink.apply(
                    _status_event("rejected", order.client_order_id, None, self._clock.now())
                )
                return
            except BrokerRetryable as exc:
                self.stats.unknown += 1
                log.warning("submit of %s unknown (%s): looking it up", order.client_order_id, exc)
                await self._sink.apply(
                    _status_event("submit_unknown", order.client_order_id, None, self._clock.now())
                )
                order = self._ledger.order(order.client_order_id) or order
                await asyncio.sleep(self._backoff * 2 ** (attempt - 1) * random.uniform(0.5, 1))
                continue
            self.stats.submitted += 1
            self.stats.submit_seconds.append(time.monotonic() - started)
            await self._apply_order(reply, "submit")
            return
        log.error(
            "order %s still unknown after %d attempts; reconciliation will resolve it",
            order.client_order_id,
            self._attempts,
        )

    async def _lookup(self, order: OrderRow, account: str) -> BrokerOrder | None:
        try:
            found = await self._brokers[account].order_by_client_id(order.client_order_id)
        except BrokerNotFound:
            return None
        except BrokerError as exc:
            log.warning("lookup of %s failed: %s", order.client_order_id, exc)
            return None
        await self._apply_order(found, "lookup")
        return found

    async def _resolve(self, order: OrderRow | None, account: str) -> None:
        if order is not None:
            await self._lookup(order, account)

    async def _apply_order(self, order: BrokerOrder, source: str) -> None:
        """Turn a REST order into the event its status stands for, through the sink."""
        event = EVENT_FOR_STATUS.get(order.status, "new")
        await self._sink.apply(
            BrokerEvent(
                event=event,
                client_order_id=order.client_order_id,
                broker_order_id=order.broker_order_id,
                ts_event=order.updated_at,
                source=source,
                symbol=order.symbol,
                side=order.side,
                cum_filled_qty=order.filled_qty,
                filled_avg_price=order.filled_avg_price,
                order_status=order.status,
            )
        )

    # -- operator actions ----------------------------------------------------------------

    async def flatten(self, strategy: str) -> dict[str, list]:
        """Cancel the strategy's open orders and sell its own shares (never another
        strategy's); returns what was done. Skips the gates, like every exit."""
        routing = self._routing[strategy]
        result: dict[str, list] = {"canceled": [], "sells": [], "errors": []}
        for order in self._ledger.orders(strategy=strategy, open_only=True):
            lock = self._locks.setdefault((routing.account, order.symbol), asyncio.Lock())
            try:
                async with lock:
                    await self._cancel(order, routing.account)
                result["canceled"].append(order.client_order_id)
            except BrokerError as exc:
                result["errors"].append(f"cancel {order.client_order_id}: {exc}")
        now = self._clock.now()
        intents = [
            Intent(
                strategy=strategy,
                symbol=position.symbol,
                action="sell",
                leg="flatten",
                signal_time=now.replace(second=0, microsecond=0),
                reason="operator flatten",
                qty=int(position.qty),
            )
            for position in self._ledger.positions(strategy)
            if position.qty > 0
        ]
        await self.execute(intents)
        for intent in intents:
            cid = client_order_id(strategy, intent.symbol, intent.signal_time, "flatten")
            row = self._ledger.order(cid)
            if row is None:
                result["errors"].append(f"{intent.symbol}: sell not sent")
            else:
                result["sells"].append(
                    {"symbol": row.symbol, "qty": str(row.qty), "client_order_id": cid}
                )
        log.warning(
            "flatten   %-12s canceled %d orders, %d sells, %d errors",
            strategy,
            len(result["canceled"]),
            len(result["sells"]),
            len(result["errors"]),
        )
        return result

    async def broker_positions(self, account: str) -> list[BrokerPosition]:
        """The account's positions at the broker (status prices, the position watch)."""
        return await self._brokers[account].positions()

    # -- reads for reconciliation and recovery -------------------------------------------

    async def snapshot(self, account: str, since: datetime) -> BrokerSnapshot:
        """Read the broker's orders, fills and positions for reconciliation."""
        broker = self._brokers[account]
        orders = await broker.orders_since(since)
        by_cid = {o.client_order_id: o for o in orders}
        not_found: set[ClientOrderId] = set()
        for row in self._ledger.orders(account=account, open_only=True):
            if row.client_order_id in by_cid:
                continue
            try:
                found = await broker.order_by_client_id(row.client_order_id)
                by_cid[found.client_order_id] = found
            except BrokerNotFound:
                not_found.add(row.client_order_id)
        fills = await broker.fill_activities(since)
        positions = await broker.positions()
        return BrokerSnapshot(
            account=account,
            orders=by_cid,
            not_found=frozenset(not_found),
            fills=fills,
            positions=positions,
        )

    async def resolve_unacked(self, account: str) -> int:
        """Look up every order still waiting for the broker's answer (written before a
        submit that crashed, timed out or was never acknowledged), unless a submit of it is
        in flight right now; re-send those the broker never received. Returns how many were
        looked up."""
        stale = [
            row
            for row in self._ledger.orders(account=account, open_only=True)
            if row.status in ("pending_submit", "unknown")
            and row.client_order_id not in self._sending
        ]
        for row in stale:
            found = await self._lookup(row, account)
            if found is None:
                await self._sink.apply(
                    _status_event("not_found", row.client_order_id, None, self._clock.now())
                )
        if stale:
            await self.resend_not_found(account)
        return len(stale)

    async def resend_not_found(self, account: str) -> int:
        """Send again (same client_order_id) every order the broker never received."""
        count = 0
        for row in self._ledger.orders(account=account):
            if (
                row.status == "not_found"
                and row.order_type == "market"
                and _same_session(row, self._clock.now())
            ):
                await self.send(row)
                count += 1
        return count


def _same_session(order: OrderRow, now: datetime) -> bool:
    return now - order.created_at < timedelta(hours=8)


def _reference_price(intent: Intent) -> float:
    sizing = intent.sizing
    if sizing is not None:
        return float(sizing.price)
    return float("nan")


def _cents(price: float | None) -> Decimal | None:
    if price is None:
        return None
    return Decimal(str(round(price, 2 if price >= 1 else 4)))


def _status_event(
    event: str, cid: ClientOrderId, broker_order_id: str | None, now: datetime
) -> BrokerEvent:
    return BrokerEvent(
        event=event,
        client_order_id=cid,
        broker_order_id=broker_order_id,  # type: ignore[arg-type]
        ts_event=now,
        source="router",
    )
