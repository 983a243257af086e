"""The order router: lanes, dispatch, and the entry / exit / stop decisions.

Intents are handed over with ``submit`` and return at once: nothing a strategy, a stream
consumer or a job does ever waits for the broker. Each (account, symbol) has one lane, a
queue worked by one task, so the intents of one symbol run in the order they were emitted
(a stop is reduced before the sell it makes room for) while other symbols run alongside and
one symbol's failure never stops another's. No strategy code runs in a lane: what the router
has to tell a strategy (not sent, the stop that rests now) is posted to the strategy's own
queue through the event sink, and what the strategy answers comes back to the lane's queue.

Each step is judged on the facts of the moment, not on whether the step before it worked:

- an entry passes the strategy's gates and buying power (``entry_gate.decide_entry``, pure),
  and its order row is written in the same breath, so concurrent lanes reserve slots and
  dollars; exits and stops skip the gates: a halt blocks new positions, never the way out;
- a sell is at most the strategy's own shares minus what its open orders already hold,
  including a protective stop whose cancel the broker has not confirmed: such a sell is not
  sent and the strategy is told, so it decides again at the next bar or clock tick;
- ``place_stop`` / ``replace_stop`` make the resting stop cover what is asked (placing,
  replacing or cancelling as the ledger's open stop requires, waiting for the broker's word),
  ``cancel_stop`` removes it; after each, the strategy is told what really rests.

The ``client_order_id`` comes from (strategy, symbol, signal time, leg) and the order is
written to the ledger as ``pending_submit`` BEFORE the HTTP call (``order_path``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from magellan_core.clock import Clock, Deadline
from magellan_daemon.adapters.alpaca.errors import BrokerError, BrokerFatal
from magellan_daemon.domain import ClientOrderId, client_order_id
from magellan_daemon.execution.entry_gate import (
    EntryFacts,
    QuoteFacts,
    decide_entry,
    reference_price,
)
from magellan_daemon.execution.events import EventSink
from magellan_daemon.execution.order_path import OrderPath
from magellan_daemon.ledger.order_fsm import OrderStatus
from magellan_daemon.ledger.store import Ledger, OrderRow
from magellan_daemon.tasks import spawn
from magellan_daemon.timefmt import session_date
from strategies.model import PROTECTIVE_STOP_LEG, Intent
from strategies.params import RiskLimits

log = logging.getLogger(__name__)
STOP_ACTIONS = frozenset({"place_stop", "replace_stop", "cancel_stop"})
PRE_BROKER = frozenset({OrderStatus.PENDING_SUBMIT, OrderStatus.UNKNOWN})
ENDED_UNFILLED = frozenset({OrderStatus.REJECTED, OrderStatus.NOT_FOUND})
# An attempt that can still be sent under its own id: the broker never had it.
UNSENT = PRE_BROKER | {OrderStatus.NOT_FOUND}
# A protective stop cannot rest while the position's own entry buy still works (Alpaca's
# wash-trade protection refuses it): wait this long for the entry to finish, then cancel its
# remainder, because protecting the shares held matters more than buying the last ones.
ENTRY_SETTLE_SECONDS = 120.0


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

    failed: int = 0
    in_flight: int = 0


@dataclass(eq=False)
class _Work:
    """One item of a lane: an intent, or the operator's flatten of one symbol."""

    strategy: str
    symbol: str
    intent: Intent | None
    intent_id: int | None
    done: asyncio.Future[object]
    reported: bool = False  # the strategy was told how this intent ended (exactly once)
    flatten_leg: str = "flatten"  # a flatten (no intent): the leg and time in force of its sell
    time_in_force: str = "day"


@dataclass(eq=False)
class _Lane:
    queue: deque[_Work] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None
    current: _Work | None = None  # being executed


class OrderRouter:
    """Routes intents to the order path of each strategy's account."""

    def __init__(
        self,
        *,
        ledger: Ledger,
        path: OrderPath,
        sink: EventSink,
        clock: Clock,
        routing: Mapping[str, StrategyRouting],
        on_fatal: Callable[[BrokerFatal], None],
    ) -> None:
        self._ledger = ledger
        self._path = path
        self._sink = sink
        self._clock = clock
        self._routing = routing
        self._on_fatal = on_fatal
        self._lanes: dict[tuple[str, str], _Lane] = {}
        self._reserved: dict[str, float] = {}  # entry cid -> dollars, until the broker knows it
        self.entries_stopped: str | None = None  # set when the broker refuses us for good
        self.stats = RouterStats()

    # -- lanes -------------------------------------------------------------------------

    def submit(
        self, intents: Sequence[Intent], intent_ids: Sequence[int | None] = ()
    ) -> list[asyncio.Future[object]]:
        """Queue intents on their lanes (never waits); each future completes when its
        intent was executed (or not), with the result of that step."""
        ids = list(intent_ids) or [None] * len(intents)
        return [
            self._enqueue(intent.strategy, intent.symbol, intent, intent_id)
            for intent, intent_id in zip(intents, ids, strict=True)
        ]

    async def execute(
        self, intents: Sequence[Intent], intent_ids: Sequence[int | None] = ()
    ) -> None:
        """``submit`` and wait until every intent was executed."""
        await asyncio.gather(*self.submit(intents, intent_ids))

    def selling(self, strategy: str, symbol: str) -> int:
        """Shares the strategy's sells queued or being executed on the symbol's lane will
        sell (a flatten: all it holds): an exit on its way that has no order row yet."""
        lane = self._lanes.get((self._routing[strategy].account, symbol))
        if lane is None:
            return 0
        total = 0
        for work in (lane.current, *lane.queue):
            if work is None or work.strategy != strategy:
                continue
            if work.intent is None:
                total += int(self._ledger.position_qty(strategy, symbol))
            elif work.intent.action == "sell":
                total += work.intent.qty or 0
        return total

    def busy(self) -> bool:
        """True while any lane has work."""
        return any(lane.queue or lane.task for lane in self._lanes.values())

    async def drain(self, timeout: float) -> bool:
        """Wait (wall ``timeout``) until every lane is idle; False if work was left."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while self.busy():
            if loop.time() >= end:
                return False
            await asyncio.sleep(0.02)
        return True

    async def cancel_lanes(self) -> None:
        """Stop every lane now (shutdown, after ``drain``): what is left is not executed."""
        tasks = [lane.task for lane in self._lanes.values() if lane.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def flatten_symbol(
        self, strategy: str, symbol: str, leg: str, *, time_in_force: str = "day"
    ) -> asyncio.Future[object]:
        """Queue a flatten of one symbol on its lane (the position guard's): its open orders
        cancelled, then a market sell of its shares with ``leg`` and ``time_in_force``."""
        return self._enqueue(strategy, symbol, None, None, leg, time_in_force)

    def _enqueue(
        self,
        strategy: str,
        symbol: str,
        intent: Intent | None,
        intent_id: int | None,
        flatten_leg: str = "flatten",
        time_in_force: str = "day",
    ) -> asyncio.Future[object]:
        routing = self._routing[strategy]
        key = (routing.account, symbol)
        lane = self._lanes.setdefault(key, _Lane())
        work = _Work(
            strategy,
            symbol,
            intent,
            intent_id,
            asyncio.get_running_loop().create_future(),
            flatten_leg=flatten_leg,
            time_in_force=time_in_force,
        )
        lane.queue.append(work)
        if lane.task is None:
            lane.task = spawn(self._run_lane(key, lane), name=f"lane-{key[0]}-{symbol}")
        return work.done

    async def _run_lane(self, key: tuple[str, str], lane: _Lane) -> None:
        try:
            while lane.queue:
                work = lane.queue.popleft()
                if _superseded(work, lane.queue):
                    self._skip_stop(work)
                    continue
                self.stats.in_flight += 1
                lane.current = work
                try:
                    result = await self._do(work)
                except BrokerFatal as exc:
                    self._failed(work, exc)
                    self._on_fatal(exc)
                    result = None
                except Exception as exc:  # one step's failure never stops the lane
                    self._failed(work, exc)
                    result = None
                finally:
                    self.stats.in_flight -= 1
                    lane.current = None
                if work.intent is not None and work.intent.action in STOP_ACTIONS:
                    self._report_stop(work)  # what rests now, done or failed: once
                if not work.done.done():
                    work.done.set_result(result)
        finally:
            lane.task = None
            for work in lane.queue:  # only if this task itself was cancelled (shutdown)
                if not work.done.done():
                    work.done.set_result(None)
            if not lane.queue:
                self._lanes.pop(key, None)

    def _skip_stop(self, work: _Work) -> None:
        """A stop size the strategy asked for and then asked again differently: only the
        later one is sent (each replace waits for the broker; a chain of them would leave
        shares unprotected for as long). The strategy is told what rests now."""
        assert work.intent is not None
        self._mark(work.intent_id, "blocked", "superseded by a later stop intent")
        self._report_stop(work)
        if not work.done.done():
            work.done.set_result(None)

    def _failed(self, work: _Work, exc: BaseException) -> None:
        intent = work.intent
        what = f"{work.strategy} {work.symbol} {intent.leg if intent else 'flatten'}"
        if isinstance(exc, BrokerError):
            log.error("%s failed: %s", what, exc)
        else:
            log.error("%s failed", what, exc_info=exc)
        self.stats.failed += 1
        if intent is None:
            return
        reason = f"{type(exc).__name__}: {exc}"[:300]
        self._mark(work.intent_id, "failed", reason)
        if intent.action in ("buy", "sell"):
            self._not_sent(work, reason, status="failed")
        # a stop intent's report (what rests now) is the lane's, after every step

    async def _do(self, work: _Work) -> object:
        intent = work.intent
        if intent is None:
            return await self._flatten_symbol(work)
        routing = self._routing[intent.strategy]
        if intent.action == "buy":
            await self._entry(work, routing)
        elif intent.action == "sell":
            await self._exit(work, routing)
        elif intent.action in ("place_stop", "replace_stop"):
            await self._set_stop(intent, work.intent_id, routing)
        elif intent.action == "cancel_stop":
            await self._cancel_stop(intent, work.intent_id)
        else:
            raise ValueError(f"unknown intent action {intent.action!r}")
        return None

    # -- bookkeeping -------------------------------------------------------------------

    def _mark(self, intent_id: int | None, status: str, reason: str) -> None:
        if intent_id is not None:
            self._ledger.set_intent_status(intent_id, status, reason, self._clock.now())

    def _not_sent(self, work: _Work, reason: str, status: str = "blocked") -> None:
        """Tell the strategy its buy/sell was not sent and why (the intent's one report)."""
        intent = work.intent
        assert intent is not None
        if work.reported:
            log.error("intent %s %s %s reported twice", intent.strategy, intent.symbol, intent.leg)
            return
        work.reported = True
        # An exit the strategy holds shares for and that did not go out leaves a position
        # longer than meant: an operator should see it.
        held = self._ledger.position_qty(intent.strategy, intent.symbol)
        level = logging.WARNING if intent.action == "sell" and held > 0 else logging.INFO
        log.log(
            level,
            "not sent  %-12s %-6s %s: %s",
            intent.strategy,
            intent.symbol,
            intent.leg,
            reason,
            extra={
                "fields": {"STRATEGY": intent.strategy, "SYMBOL": intent.symbol, "EVENT": status}
            },
        )
        self._mark(work.intent_id, status, reason)
        self._sink.not_sent(intent, reason)

    def _sent(self, work: _Work, row: OrderRow, note: str = "") -> None:
        """The intent went out as ``row``: its fills or its end are the strategy's report
        (the event sink tells it); a refusal already told it so."""
        work.reported = True
        status = "failed" if row.status in ENDED_UNFILLED else "sent"
        self._mark(work.intent_id, status, note or row.status)

    def _open(self, strategy: str, symbol: str) -> list[OrderRow]:
        return self._ledger.orders(strategy=strategy, symbol=symbol, open_only=True)

    def _open_stop(self, strategy: str, symbol: str) -> OrderRow | None:
        stops = [o for o in self._open(strategy, symbol) if o.leg == PROTECTIVE_STOP_LEG]
        return stops[-1] if stops else None

    def _held_by_orders(self, strategy: str, symbol: str) -> tuple[Decimal, Decimal]:
        """Shares the strategy's open sells hold: (non-stop sells, its protective stop). A
        stop being replaced is two rows at the broker holding the larger of the two."""
        sells = [o for o in self._open(strategy, symbol) if o.side == "sell"]
        others = sum(
            (o.qty - o.filled_qty for o in sells if o.leg != PROTECTIVE_STOP_LEG), Decimal(0)
        )
        stop = max(
            (o.qty - o.filled_qty for o in sells if o.leg == PROTECTIVE_STOP_LEG),
            default=Decimal(0),
        )
        return others, stop

    def _report_stop(self, work: _Work) -> None:
        """Tell the strategy what protective stop rests now (a fact from the ledger): the
        one report of a stop intent."""
        intent = work.intent
        assert intent is not None
        if work.reported:
            log.error("stop intent %s %s reported twice", intent.strategy, intent.symbol)
            return
        work.reported = True
        stop = self._open_stop(intent.strategy, intent.symbol)
        _, resting = self._held_by_orders(intent.strategy, intent.symbol)
        self._sink.stop_report(
            intent.strategy,
            intent.symbol,
            intent.signal_time if stop is None else stop.signal_time,
            resting,
            None if stop is None else stop.stop_price,
        )

    def _new_order(
        self,
        intent: Intent,
        intent_id: int | None,
        routing: StrategyRouting,
        *,
        cid: ClientOrderId,
        side: str,
        qty: int,
        order_type: str = "market",
        time_in_force: str = "day",
        stop_price: Decimal | None = None,
        replaces: ClientOrderId | None = None,
    ) -> OrderRow:
        return self._ledger.create_order(
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
            replaces=replaces,
            now=self._clock.now(),
        )

    def _attempt(self, intent: Intent) -> tuple[ClientOrderId, OrderRow | None, list[OrderRow]]:
        """The order this buy/sell intent is: ``(cid, row, earlier)``. ``row`` is an attempt
        at the same decision that is still open (a repeated intent: it is that order), else
        None and ``cid`` is a fresh attempt's id, numbered after the ``earlier`` ones that
        ended, so a re-decided exit never collides with a refused one."""
        earlier = self._ledger.orders_of_signal(
            intent.strategy, intent.symbol, intent.leg, intent.signal_time
        )
        for row in earlier:
            if row.is_open:
                return row.client_order_id, row, earlier
        if earlier and earlier[-1].status == OrderStatus.NOT_FOUND:
            return earlier[-1].client_order_id, earlier[-1], earlier  # never received: again
        seq = len(earlier) + 1 if earlier else 0
        cid = client_order_id(intent.strategy, intent.symbol, intent.signal_time, intent.leg, seq)
        return cid, None, earlier

    def _already_out(self, work: _Work, working: OrderRow | None) -> bool:
        """A repeated intent whose order is out at the broker: that order's fills or end
        answer it (the strategy hears them under the same leg and signal time)."""
        if working is None or working.status in UNSENT:
            return False
        self._sent(work, working, f"already {working.status} as {working.client_order_id}")
        return True

    # -- entries -----------------------------------------------------------------------

    async def _entry(self, work: _Work, routing: StrategyRouting) -> None:
        intent, intent_id = work.intent, work.intent_id
        assert intent is not None
        cid, working, earlier = self._attempt(intent)
        if self._already_out(work, working):
            return
        if working is None and earlier:
            # An entry is never tried twice for one signal: the strategy decides again.
            ended = earlier[-1]
            self._not_sent(work, f"its order {ended.client_order_id} already {ended.status}")
            return
        if self.entries_stopped:
            self._not_sent(work, f"entries stopped: {self.entries_stopped}")
            return
        account = await self._path.read(routing.account, lambda b: b.account_info())
        quote = None
        if routing.max_spread_pct is not None:
            found = await self._path.broker(routing.account).latest_quote(intent.symbol)
            if found is not None:
                quote = QuoteFacts(
                    bid=found.bid, ask=found.ask, bid_size=found.bid_size, ask_size=found.ask_size
                )
        # From here to the order row nothing is awaited: the facts hold while we decide.
        gate = decide_entry(self._entry_facts(intent, routing, account, quote))
        if not gate.allowed:
            self._not_sent(work, gate.reason)
            return
        if gate.reason:
            log.info("entry %s %s: %s", intent.strategy, intent.symbol, gate.reason)
        row = working or self._new_order(
            intent, intent_id, routing, cid=cid, side="buy", qty=gate.qty
        )
        self._reserved[cid] = gate.qty * reference_price(intent.sizing)
        try:
            row = await self._path.send(row)
        finally:
            self._reserved.pop(cid, None)
        self._sent(work, row)

    def _entry_facts(
        self, intent: Intent, routing: StrategyRouting, account: object, quote: QuoteFacts | None
    ) -> EntryFacts:
        strategy = intent.strategy
        today = session_date(self._clock.now())
        open_entries = frozenset(
            o.symbol
            for o in self._ledger.orders(strategy=strategy, open_only=True)
            if o.side == "buy" and o.leg != PROTECTIVE_STOP_LEG
        )
        return EntryFacts(
            symbol=intent.symbol,
            limits=routing.limits,
            halted=self._ledger.halted(strategy),
            equity=float(account.equity),  # type: ignore[attr-defined]
            buying_power=float(account.buying_power),  # type: ignore[attr-defined]
            reserved_dollars=sum(self._reserved.values()),
            positions={p.symbol: int(p.qty) for p in self._ledger.positions(strategy)},
            open_entries=open_entries,
            entries_today=self._ledger.entries_on(strategy, today),
            realised_pnl_today=float(self._ledger.realized_on(strategy, today)),
            price=reference_price(intent.sizing),
            qty=intent.qty,
            sizing=intent.sizing,
            quote=quote,
            max_spread_pct=routing.max_spread_pct,
            min_liquidity_shares=routing.min_liquidity_shares,
        )

    # -- exits -------------------------------------------------------------------------

    def _sellable(self, strategy: str, symbol: str) -> tuple[int, str]:
        held = int(self._ledger.position_qty(strategy, symbol))
        others, stop = self._held_by_orders(strategy, symbol)
        free = held - int(others) - int(stop)
        why = f"holds {held}"
        if others:
            why += f", {others} in open sells"
        if stop:
            why += f", {stop} held by the protective stop"
        return free, why

    async def _exit(self, work: _Work, routing: StrategyRouting) -> None:
        intent, intent_id = work.intent, work.intent_id
        assert intent is not None
        cid, working, _ = self._attempt(intent)
        if self._already_out(work, working):
            return
        if working is None:
            free, why = self._sellable(intent.strategy, intent.symbol)
            qty = min(intent.qty or 0, free)
            if qty <= 0:
                self._not_sent(work, f"nothing to sell ({why})")
                return
            if qty != intent.qty:
                # The strategy hears the order's own quantity with each fill (order_qty).
                log.info("sell %s reduced to %d of %s (%s)", cid, qty, intent.qty, why)
            working = self._new_order(intent, intent_id, routing, cid=cid, side="sell", qty=qty)
        self._sent(work, await self._path.send(working))

    # -- the protective stop -----------------------------------------------------------

    def _next_stop_id(self, intent: Intent) -> ClientOrderId:
        base = client_order_id(intent.strategy, intent.symbol, intent.signal_time, "ps")
        return client_order_id(
            intent.strategy,
            intent.symbol,
            intent.signal_time,
            "ps",
            seq=self._ledger.count_orders_like(base) + 1,
        )

    async def _current_stop(self, intent: Intent) -> OrderRow | None:
        """The open stop row, after resolving one whose submit is still unknown."""
        stop = self._open_stop(intent.strategy, intent.symbol)
        if stop is not None and stop.status in PRE_BROKER:
            found = await self._path.lookup(stop)
            if found.missing:
                self._path.mark(stop.client_order_id, "not_found")
            stop = self._open_stop(intent.strategy, intent.symbol)
        return stop

    async def _set_stop(self, intent: Intent, intent_id: int | None, routing: StrategyRouting):
        current = await self._current_stop(intent)
        held = int(self._ledger.position_qty(intent.strategy, intent.symbol))
        others, _ = self._held_by_orders(intent.strategy, intent.symbol)
        want = min(intent.qty or 0, held - int(others))
        price = _cents(intent.stop_price)
        if current is None:
            if want <= 0:
                self._mark(intent_id, "blocked", f"no shares to protect (holds {held})")
                return
            await self._settle_entry(intent)
            await self._path.send(self._new_stop(intent, intent_id, routing, want, price, None))
            self._mark(intent_id, "sent", "")
            return
        if want <= 0:
            outcome = await self._path.cancel(current)
            self._mark(intent_id, "sent", f"stop cancel {outcome} (no shares left)")
            return
        price = price or current.stop_price
        if want == int(current.qty - current.filled_qty) and price == current.stop_price:
            self._mark(intent_id, "sent", "stop unchanged")
            return
        new = self._new_stop(intent, intent_id, routing, want, price, current.client_order_id)
        outcome = await self._path.replace(current, new, qty=want, stop_price=price)
        self._mark(intent_id, "sent" if outcome == "replaced" else "failed", f"replace {outcome}")

    def _new_stop(
        self,
        intent: Intent,
        intent_id: int | None,
        routing: StrategyRouting,
        qty: int,
        price: Decimal | None,
        replaces: ClientOrderId | None,
    ) -> OrderRow:
        """The row of a new protective stop (GTC), written before its POST or PATCH."""
        return self._new_order(
            intent,
            intent_id,
            routing,
            cid=self._next_stop_id(intent),
            side="sell",
            qty=qty,
            order_type="stop",
            time_in_force="gtc",
            stop_price=price,
            replaces=replaces,
        )

    async def _settle_entry(self, intent: Intent) -> None:
        """Wait for the strategy's working entry on the symbol to finish (see
        ``ENTRY_SETTLE_SECONDS``); cancel what is left of it after that."""
        deadline = Deadline(self._clock, ENTRY_SETTLE_SECONDS)
        while True:
            entries = [
                o
                for o in self._open(intent.strategy, intent.symbol)
                if o.side == "buy" and o.status not in PRE_BROKER
            ]
            if not entries:
                return
            if deadline.expired():
                for entry in entries:
                    outcome = await self._path.cancel(entry)
                    log.warning(
                        "entry %s still working %g s after its first fill: rest cancelled "
                        "(%s) so the shares held can be protected",
                        entry.client_order_id,
                        ENTRY_SETTLE_SECONDS,
                        outcome,
                    )
                return
            await asyncio.sleep(min(0.25, deadline.remaining()))

    async def _cancel_stop(self, intent: Intent, intent_id: int | None) -> None:
        current = await self._current_stop(intent)
        if current is None:
            self._mark(intent_id, "sent", "no open stop")
            return
        outcome = await self._path.cancel(current)
        self._mark(intent_id, "sent" if outcome != "refused" else "failed", f"cancel {outcome}")

    # -- operator actions --------------------------------------------------------------

    async def flatten(self, strategy: str) -> dict[str, list]:
        """Cancel the strategy's open orders and sell its own shares (never another
        strategy's), symbol by symbol on their lanes; returns what was done. Skips the
        gates, like every exit."""
        symbols = {o.symbol for o in self._ledger.orders(strategy=strategy, open_only=True)}
        symbols |= {p.symbol for p in self._ledger.positions(strategy) if p.qty > 0}
        done = [self._enqueue(strategy, symbol, None, None) for symbol in sorted(symbols)]
        result: dict[str, list] = {"canceled": [], "sells": [], "refused": [], "errors": []}
        for part in await asyncio.gather(*done):
            if not isinstance(part, dict):
                result["errors"].append("a symbol's flatten failed (see the log)")
                continue
            for key, values in part.items():
                result[key].extend(values)
        log.warning(
            "flatten   %-12s canceled %d orders, %d sells, %d refused, %d errors",
            strategy,
            len(result["canceled"]),
            len(result["sells"]),
            len(result["refused"]),
            len(result["errors"]),
        )
        return result

    async def _flatten_symbol(self, work: _Work) -> dict[str, list]:
        strategy, symbol = work.strategy, work.symbol
        result: dict[str, list] = {"canceled": [], "sells": [], "refused": [], "errors": []}
        for order in self._open(strategy, symbol):
            outcome = await self._path.cancel(order)
            if outcome in ("canceled", "gone", "filled"):
                result["canceled"].append(order.client_order_id)
            else:
                result["errors"].append(f"cancel {order.client_order_id}: {outcome}")
        if result["errors"] and work.flatten_leg != "flatten":
            # The position guard's flatten sells nothing beside an order it could not cancel
            # (two sells would work for one position); it tries again after its backoff. The
            # operator's flatten sells what it can at once.
            return result
        free, why = self._sellable(strategy, symbol)
        if free <= 0:
            if int(self._ledger.position_qty(strategy, symbol)) > 0:
                result["errors"].append(f"{symbol}: nothing sellable ({why})")
            return result
        now = self._clock.now()
        intent = Intent(
            strategy=strategy,
            symbol=symbol,
            action="sell",
            leg=work.flatten_leg,
            signal_time=now.replace(second=0, microsecond=0),
            reason=work.flatten_leg,
            qty=free,
        )
        cid, working, _ = self._attempt(intent)
        row = working or self._new_order(
            intent,
            None,
            self._routing[strategy],
            cid=cid,
            side="sell",
            qty=free,
            time_in_force=work.time_in_force,
        )
        row = await self._path.send(row)
        entry = {"symbol": symbol, "qty": str(row.qty), "client_order_id": cid}
        if row.status == OrderStatus.REJECTED:
            result["refused"].append({**entry, "status": row.status})
            result["errors"].append(f"sell {symbol} refused by the broker")
        elif row.status in PRE_BROKER:
            result["errors"].append(f"sell {symbol}: outcome unknown ({cid})")
        else:
            result["sells"].append(entry)
        return result


_STOP_SIZING = frozenset({"place_stop", "replace_stop"})


def _superseded(work: _Work, queue: deque[_Work]) -> bool:
    """Whether ``work`` sizes a stop and the very next item of its lane sizes the same
    strategy's stop again (nothing in between that depends on the first one)."""
    if not queue or work.intent is None or work.intent.action not in _STOP_SIZING:
        return False
    after = queue[0].intent
    return (
        after is not None
        and after.action in _STOP_SIZING
        and after.strategy == work.intent.strategy
        and after.symbol == work.intent.symbol
        and (after.stop_price is not None or work.intent.stop_price is None)  # keeps a price
    )


def _cents(price: float | None) -> Decimal | None:
    if price is None:
        return None
    return Decimal(str(round(price, 2 if price >= 1 else 4)))
