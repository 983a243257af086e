"""The exchange: a paper broker with one account per API key, orders matched against the
market's bars, trade updates for every change.

It owns its parts and wires each to the few others it needs:

- ``orders`` (``order_desk``): submit, list, replace and cancel orders;
- ``accounts`` (``account_desk``): the account, its positions, its activities;
- ``data`` (``market_desk``): clock, calendar, assets, bars, trades, quotes, corporate
  actions;
- the core (``exchange_core``): time, what becomes due as the clock moves, and matching;
- beneath them: ``lifecycle`` (working orders, cancels and replaces in flight, status
  changes and their trade updates), ``book`` (accounts by key, ids), ``valuation``
  (prices), ``corporate_desk`` (splits and dividends applied to the accounts).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from decimal import Decimal

from magellan_core.clock import Clock
from magellan_core.corporate_actions import CorporateAction
from magellan_sim.exchange.account_desk import AccountDesk
from magellan_sim.exchange.assets import Assets
from magellan_sim.exchange.book import AccountBook, Ids
from magellan_sim.exchange.corporate_desk import CorporateDesk
from magellan_sim.exchange.exchange_core import ExchangeCore
from magellan_sim.exchange.faults import Faults
from magellan_sim.exchange.lifecycle import Listener, OrderLifecycle
from magellan_sim.exchange.market_desk import MarketDesk
from magellan_sim.exchange.order_desk import OrderDesk
from magellan_sim.exchange.valuation import Valuation
from magellan_sim.market.calendar import SessionCalendar
from magellan_sim.market.corporate import CorporateBook
from magellan_sim.market.market import MarketData
from magellan_sim.market.tape import Tape

__all__ = ["Exchange", "Listener"]


class Exchange:
    """A paper broker: one account per API key, orders matched against the market's bars.

    Requests go to its desks (``orders``, ``accounts``, ``data``); a driver of time (the
    server's publisher, the backtest) calls ``advance`` and ``next_due``.
    """

    def __init__(
        self,
        clock: Clock,
        market: MarketData,
        calendar: SessionCalendar,
        *,
        cash: Decimal = Decimal(100000),
        slippage_bps: float = 0.0,
        faults: Faults | None = None,
        seed: int = 0,
        wash_trade_check: bool = True,
        cancel_latency: float = 2.0,
        replace_latency: float = 2.0,
        corporate_actions: Iterable[CorporateAction] = (),
    ) -> None:
        self.clock = clock
        self.market = market
        self.calendar = calendar
        self.faults = faults or Faults()
        self.faults.use_clock(clock.now)
        self.tape = Tape(market, calendar)
        self.corporate = CorporateBook(corporate_actions)
        ids = Ids(seed)
        book = AccountBook(clock, cash)
        valuation = Valuation(self.tape, self.corporate, calendar)
        self._lifecycle = OrderLifecycle(book, calendar, self.faults, ids)
        corporate_desk = CorporateDesk(
            self.corporate, accounts=book, lifecycle=self._lifecycle, valuation=valuation, ids=ids
        )
        self._core = ExchangeCore(
            clock,
            calendar,
            lifecycle=self._lifecycle,
            accounts=book,
            valuation=valuation,
            corporate=self.corporate,
            apply_action=corporate_desk.apply,
            slippage_bps=slippage_bps,
        )
        advance = self._core.advance
        assets = Assets(market)
        self.orders = OrderDesk(
            clock,
            calendar,
            market,
            advance=advance,
            accounts=book,
            lifecycle=self._lifecycle,
            valuation=valuation,
            faults=self.faults,
            ids=ids,
            wash_trade_check=wash_trade_check,
            cancel_latency=cancel_latency,
            replace_latency=replace_latency,
        )
        self.accounts = AccountDesk(
            clock,
            calendar,
            advance=advance,
            accounts=book,
            valuation=valuation,
            assets=assets,
            orders=self.orders,
        )
        self.data = MarketDesk(
            clock,
            calendar,
            market,
            advance=advance,
            accounts=book,
            assets=assets,
            tape=self.tape,
            corporate=self.corporate,
            corporate_desk=corporate_desk,
        )

    def advance(self) -> None:
        """Process everything due up to ``clock.now()`` in time order (idempotent)."""
        self._core.advance()

    def next_due(self) -> datetime | None:
        """When the earliest cancel or replace in flight completes (None if none is): an
        instant ``advance()`` must reach even when no request arrives."""
        return self._core.next_due()

    def busy(self) -> bool:
        """An order is working or a cancel or replace is in flight: only then can moving
        the clock change anything a listener hears. A driver of time may skip ``advance``
        at instants where this is False: every desk calls ``advance`` before it answers,
        and the core catches up on the opens, closes and actions it passed, in order."""
        return self._core.busy()

    def add_listener(self, callback: Listener) -> None:
        """Call ``callback(account_key, message)`` for every trade_updates message."""
        self._lifecycle.updates.add_listener(callback)

    def add_schedule_listener(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` whenever a cancel or replace is put in flight (``next_due``
        may then be earlier than it was): the server's publisher re-plans its wake-up."""
        self._lifecycle.add_schedule_listener(callback)
