"""Entries: the entry gate's facts gathered, decided (``entry_gate.decide_entry``, pure) and
the order row written in the same breath, so concurrent lanes reserve slots and dollars.

The account (equity, buying power) comes from ``GET /v2/account`` for every entry, or, once
``keep_accounts_in_memory`` was called (the daemon; a backtest reads its in-process exchange
as before), from one ``AccountBook`` per account, kept from the broker news the ``EventSink``
applies: an entry then waits on REST only while the book is not known (startup, after the
trade stream reconnected). An entry's dollars are reserved (``_reserved``) from the decision
until the broker acknowledges the order, then held in the book until a read that began after
the acknowledgement. The quote for the spread check has no in-memory source (the bars carry
no bid and ask): a strategy that sets ``max_spread_pct`` still reads it per entry.

An entry is never tried twice for one signal (the strategy decides again), and none goes
out once the broker refused us for good (``stopped``).
"""

from __future__ import annotations

import logging

from magellan_daemon.domain import AccountInfo, is_open
from magellan_daemon.execution.account_book import AccountBook
from magellan_daemon.execution.entry_gate import (
    EntryFacts,
    QuoteFacts,
    decide_entry,
    reference_price,
)
from magellan_daemon.execution.router.context import Job, RouteContext, StrategyRouting
from magellan_daemon.execution.router.reports import already_out, not_sent, sent
from magellan_daemon.ledger.rows import Applied
from magellan_daemon.timefmt import session_date
from strategies.api.model import PROTECTIVE_STOP_LEG, Intent

log = logging.getLogger(__package__)  # the router's logger: operators and notify match it


class Entries:
    """The entry decisions, and the dollars of entries sent but not yet known to the broker."""

    def __init__(self, ctx: RouteContext) -> None:
        self._ctx = ctx
        self._reserved: dict[str, float] = {}  # entry cid -> dollars, until the broker knows it
        self.stopped: str | None = None  # set when the broker refuses us for good
        self.books: dict[str, AccountBook] | None = None  # None: REST for every entry

    def keep_accounts_in_memory(self) -> None:
        """Entries read each account from an ``AccountBook`` kept from the broker news."""
        if self.books is None:
            self.books = {}
            self._ctx.sink.listeners.append(self._on_applied)

    def account_unknown(self, account: str) -> None:
        """The account's trade stream (re)connected: its book is read again before use (in
        the background from now, so the first entry seldom has to wait for it)."""
        if self.books is not None:
            book = self._book(account)
            book.forget()
            book.refresh_soon()

    def _book(self, account: str) -> AccountBook:
        assert self.books is not None
        book = self.books.get(account)
        if book is None:
            path = self._ctx.path

            async def read() -> AccountInfo:
                return await path.read(account, lambda b: b.account_info())

            book = self.books[account] = AccountBook(account, read)
        return book

    def _on_applied(self, applied: Applied) -> None:
        """Broker news about one order: the book of its account follows it."""
        order = applied.order
        routing = None if order is None else self._ctx.routing.get(order.strategy)
        if order is None or routing is None or self.books is None:
            return
        book = self.books.get(routing.account)
        if book is None:
            return
        if applied.fill is not None and order.side == "buy":
            book.bought(order.client_order_id, float(applied.fill.qty), float(applied.fill.price))
        if not is_open(order.status):
            book.ended(order.client_order_id)
        if applied.fill is not None or applied.status_changed:
            book.refresh_soon()

    async def enter(self, job: Job) -> None:
        """Send the buy of ``job`` if the gates and buying power allow it; report it."""
        ctx, intent, intent_id = self._ctx, job.item.intent, job.item.intent_id
        assert intent is not None
        routing = ctx.routing[intent.strategy]
        cid, working, earlier = ctx.attempt(intent)
        if already_out(ctx, job, working):
            return
        if working is None and earlier:
            # An entry is never tried twice for one signal: the strategy decides again.
            ended = earlier[-1]
            not_sent(ctx, job, f"its order {ended.client_order_id} already {ended.status}")
            return
        if self.stopped:
            not_sent(ctx, job, f"entries stopped: {self.stopped}")
            return
        if self.books is None:
            account = await ctx.path.read(routing.account, lambda b: b.account_info())
        else:
            account = await self._book(routing.account).account_now()
        quote = None
        if routing.max_spread_pct is not None:
            found = await ctx.path.broker(routing.account).latest_quote(intent.symbol)
            if found is not None:
                quote = QuoteFacts(
                    bid=found.bid, ask=found.ask, bid_size=found.bid_size, ask_size=found.ask_size
                )
        # From here to the order row nothing is awaited: the facts hold while we decide.
        gate = decide_entry(self._facts(intent, routing, account, quote))
        if not gate.allowed:
            not_sent(ctx, job, gate.reason)
            return
        if gate.reason:
            log.info("entry %s %s: %s", intent.strategy, intent.symbol, gate.reason)
        row = working or ctx.new_order(intent, intent_id, cid=cid, side="buy", qty=gate.qty)
        price = reference_price(intent.sizing)
        self._reserved[cid] = gate.qty * price
        try:
            row = await ctx.path.send(row)
        finally:
            self._reserved.pop(cid, None)
            if self.books is not None and self._reserved_until_read(row):
                # the broker may know it now: held until a read that began after this
                self._book(routing.account).hold(cid, gate.qty, price)
        sent(ctx, job, row)

    @staticmethod
    def _reserved_until_read(row: object) -> bool:
        """Whether a sent entry may hold buying power at the broker (not if it ended)."""
        status = getattr(row, "status", None)
        return status is None or is_open(status)

    def _facts(
        self,
        intent: Intent,
        routing: StrategyRouting,
        account: AccountInfo,
        quote: QuoteFacts | None,
    ) -> EntryFacts:
        ledger, strategy = self._ctx.ledger, intent.strategy
        today = session_date(self._ctx.clock.now())
        open_entries = frozenset(
            o.symbol
            for o in ledger.orders(strategy=strategy, open_only=True)
            if o.side == "buy" and o.leg != PROTECTIVE_STOP_LEG
        )
        return EntryFacts(
            symbol=intent.symbol,
            limits=routing.limits,
            halted=ledger.halted(strategy),
            equity=float(account.equity),
            buying_power=float(account.buying_power),
            reserved_dollars=sum(self._reserved.values()),
            positions={p.symbol: int(p.qty) for p in ledger.positions(strategy)},
            open_entries=open_entries,
            entries_today=ledger.entries_on(strategy, today),
            realised_pnl_today=float(ledger.realized_on(strategy, today)),
            price=reference_price(intent.sizing),
            qty=intent.qty,
            sizing=intent.sizing,
            quote=quote,
            max_spread_pct=routing.max_spread_pct,
            min_liquidity_shares=routing.min_liquidity_shares,
        )
