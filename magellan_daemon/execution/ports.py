"""The execution layer's ports, as protocols.

``Broker`` (and ``ReconcilingBroker``) is what the execution and reconciliation layers ask of
one broker account. The order path, the router (through the order path), the corporate-action
watch and the recovery are written against it and never against an adapter, so the same code
trades on Alpaca over HTTP (``adapters.alpaca.rest.AlpacaBroker``) and on the simulator's
exchange in the same process (``adapters.inprocess.InProcessBroker``, ``magellan backtest``).
Every call answers in domain values and fails with the broker error taxonomy
(``magellan_daemon.errors``): an adapter's own exceptions never cross the port.

``IntentRouter`` is what the runtime calls on the order path: a strategy runner depends on it,
not on the concrete router, so either side can change behind it. ``GuardRouter`` adds what
the position guard asks of the router (a flatten of one symbol, the sells still in a lane).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Protocol

from magellan_core.corporate_actions import CorporateAction
from magellan_daemon.domain import (
    AccountActivity,
    AccountInfo,
    BrokerFill,
    BrokerOrder,
    BrokerPosition,
    Quote,
)
from strategies.api.model import Intent


class Broker(Protocol):
    """One account's orders and account reads: what the order path, the router and the
    corporate-action watch call. Both adapters implement it."""

    async def submit_order(
        self,
        *,
        client_order_id: str,
        symbol: str,
        qty: int,
        side: str,
        order_type: str,
        time_in_force: str,
        stop_price: Decimal | None = None,
    ) -> BrokerOrder:
        """POST an order; a retryable error means its outcome is unknown."""

    async def order_by_client_id(self, client_order_id: str) -> BrokerOrder:
        """The order by our id; ``BrokerNotFound`` when the broker never had it."""

    async def replace_order(
        self,
        broker_order_id: str,
        *,
        qty: int,
        stop_price: Decimal | None,
        client_order_id: str,
    ) -> BrokerOrder:
        """Replace an order: the new one (the old one becomes ``replaced``)."""

    async def cancel_order(self, broker_order_id: str) -> None:
        """Ask for a cancel (the ``canceled`` event follows)."""

    async def account_info(self) -> AccountInfo:
        """The account's equity, buying power and cash."""

    async def latest_quote(self, symbol: str) -> Quote | None:
        """The latest quote, or None when there is none."""

    async def positions(self) -> list[BrokerPosition]:
        """The account's positions (all strategies together)."""

    async def corporate_actions(
        self, symbols: Sequence[str], start: date, end: date
    ) -> list[CorporateAction]:
        """The splits and cash dividends of ``symbols`` with an ex-date in [start, end]."""

    async def activities(self, activity_type: str, after: datetime) -> list[AccountActivity]:
        """The non-trade activities of one type (SPLIT, CIL, DIV) after ``after``."""


class ReconcilingBroker(Broker, Protocol):
    """A ``Broker`` that also lists what reconciliation compares with the ledger (the live
    daemon's recovery; a backtest has no restart and no lost stream to recover from)."""

    async def orders_since(self, after: datetime) -> list[BrokerOrder]:
        """Every order (any status) submitted after ``after``, oldest first."""

    async def open_orders(self) -> list[BrokerOrder]:
        """The orders still open at the broker."""

    async def fill_activities(self, after: datetime) -> list[BrokerFill]:
        """The FILL activities after ``after``, oldest first."""


class IntentRouter(Protocol):
    """Where a strategy runner hands its intents (``router.OrderRouter`` in the daemon)."""

    def submit(
        self, intents: Sequence[Intent], intent_ids: Sequence[int | None] = ()
    ) -> list[asyncio.Future[object]]:
        """Queue intents (never waits); each future completes when its intent was executed
        (or not)."""
        ...

    async def execute(
        self, intents: Sequence[Intent], intent_ids: Sequence[int | None] = ()
    ) -> None:
        """``submit`` and wait until every intent was executed."""
        ...


class GuardRouter(IntentRouter, Protocol):
    """What the position guard asks of the router (``router.OrderRouter`` in the daemon)."""

    def selling(self, strategy: str, symbol: str) -> int:
        """Shares the strategy's sells queued or running on the symbol's lane will sell."""
        ...

    def flatten_symbol(
        self, strategy: str, symbol: str, leg: str, *, time_in_force: str = "day"
    ) -> asyncio.Future[object]:
        """Queue a flatten of one symbol: its open orders cancelled, then a market sell."""
        ...
