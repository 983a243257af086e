"""One account's buying power and equity in memory, so an entry does not wait on REST.

The account is the last ``GET /v2/account`` (a *read*), lowered by what our own orders did
since that read began, as the broker news shows it (``EventSink``: the trade-updates stream,
submit replies and reconciliation alike):

- an entry the broker has acknowledged holds its dollars until a read that began after the
  acknowledgement, or until it ends (``hold``): qty times the price it was sized at (the
  close of the bar that signalled it: the last price the bars told us) plus ``COLLAR``, the
  widest collar Alpaca puts on a market buy for its buying-power check (alpaca-wire 2.3), so
  the hold is not less than what the broker holds back unless the price ran away by more
  within the seconds the order is open (the broker's own check still refuses what it cannot
  cover; the background read below then brings the exact figure);
- a buy fill costs its dollars (qty times the fill's price), and releases as much of the
  entry's hold as the filled shares held;
- a sell fill, or a buy that ends unfilled and was not ours to hold (open at the read), is
  not credited: what the broker gives back then is not known exactly from the event (a
  margin account's buying power is not its cash), so the book stays below the truth until
  the next read, never above it.

Every applied event also asks for a read in the background (coalesced: one in flight, one
more after it if news came meanwhile), so the book meets the broker's figure again within one
round trip; the entry path never waits for it. The book is *not known* at startup and after
the trade stream reconnects (news may have been missed): an entry then reads by REST and
waits, as before, and trades on no guess. A read's answer applies only the adjustments made
after it began (``generation``), so a read overtaken by news is not taken for newer truth.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from decimal import Decimal

from magellan_daemon.domain import AccountInfo
from magellan_daemon.tasks import spawn

log = logging.getLogger(__name__)
COLLAR = 0.04  # a market buy is checked as a limit up to 4% above the last price


class AccountBook:
    """The in-memory account of one broker account (see the module docstring)."""

    def __init__(self, name: str, read: Callable[[], Awaitable[AccountInfo]]) -> None:
        self.name = name
        self._read = read
        self._known: AccountInfo | None = None
        self._generation = 0  # moves with every adjustment; a read remembers where it began
        self._epoch = 0  # moves when the book is forgotten: older reads are not adopted
        # entry cid -> (generation, dollars, dollars per share)
        self._holds: dict[str, tuple[int, float, float]] = {}
        self._spent: list[tuple[int, float]] = []  # buy fills since: (generation, dollars)
        self._refreshing = False
        self._again = False
        self.reads = 0  # REST reads made (entries that waited, and background refreshes)

    # -- what an entry sees --------------------------------------------------------------

    def account(self) -> AccountInfo | None:
        """The account as the book knows it now, or None when it is not known."""
        known = self._known
        if known is None:
            return None
        owed = sum(h[1] for h in self._holds.values()) + sum(d for _, d in self._spent)
        if not owed:
            return known
        power = max(known.buying_power - Decimal(repr(round(owed, 2))), Decimal(0))
        return AccountInfo(equity=known.equity, buying_power=power, cash=known.cash)

    async def account_now(self) -> AccountInfo:
        """The account, read by REST first when it is not known (startup, reconnect)."""
        found = self.account()
        if found is not None:
            return found
        await self._read_once()
        found = self.account()
        assert found is not None
        return found

    # -- what our orders did -------------------------------------------------------------

    def hold(self, cid: str, qty: float, price: float) -> None:
        """An entry of ``qty`` sized at ``price`` the broker knows now: it holds buying power."""
        per_share = price * (1 + COLLAR)
        dollars = qty * per_share
        if dollars > 0:  # (a NaN price holds nothing: the gate refused such an entry)
            self._generation += 1
            self._holds[cid] = (self._generation, dollars, per_share)
        self.refresh_soon()  # the broker's own figure, one round trip later

    def bought(self, cid: str, qty: float, price: float) -> None:
        """A buy fill of ``qty`` at ``price``: its cost, less the hold it releases."""
        self._generation += 1
        self._spent.append((self._generation, qty * price))
        held = self._holds.get(cid)
        if held is not None:
            left = held[1] - qty * held[2]
            if left > 0.005:
                self._holds[cid] = (held[0], left, held[2])
            else:
                del self._holds[cid]

    def ended(self, cid: str) -> None:
        """An order of ours ended (filled, canceled, expired, rejected): no hold any more."""
        self._holds.pop(cid, None)

    def forget(self) -> None:
        """The trade stream (re)connected: news may have been missed; read before trusting."""
        self._known = None
        self._epoch += 1
        self._holds.clear()
        self._spent.clear()

    # -- reads ---------------------------------------------------------------------------

    def refresh_soon(self) -> None:
        """Read the account in the background (coalesced); nobody waits for it."""
        if self._refreshing:
            self._again = True
            return
        self._refreshing = True
        spawn(self._refresh(), name=f"account-refresh-{self.name}")

    async def _refresh(self) -> None:
        try:
            while True:
                self._again = False
                try:
                    await self._read_once()
                except Exception as exc:  # the book keeps its (lower) figure; next news retries
                    log.debug("%s: background account read failed: %s", self.name, exc)
                    return
                if not self._again:
                    return
        finally:
            self._refreshing = False

    async def _read_once(self) -> None:
        began, epoch = self._generation, self._epoch
        self.reads += 1
        info = await self._read()
        if epoch != self._epoch:
            # forgotten meanwhile (a reconnect): adjustments were dropped, so an answer from
            # before it is not the truth minus them; an entry waiting here reads again
            if self._known is None:
                await self._read_once()
            return
        # what happened after the read began is not in its answer: keep those adjustments
        self._holds = {c: h for c, h in self._holds.items() if h[0] > began}
        self._spent = [s for s in self._spent if s[0] > began]
        self._known = info
