"""``AlpacaBroker``'s order and account calls served by the simulator's exchange core in the
same process: no HTTP, no threads, no throttle (``magellan backtest``).

The exchange answers in Alpaca's wire format (dicts), which the converters that read
alpaca-py's models turn into the same domain values; its refusals (``SimError``) come out as
the broker error taxonomy, classified by HTTP status as ``errors.classify`` does for
Alpaca's answers. Its trade updates reach ``on_event`` synchronously, in the order the
exchange emits them, as the trade stream's consumer would hand them over.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from magellan_core.corporate_actions import ACTION_TYPES, CorporateAction
from magellan_daemon.adapters.alpaca.convert import (
    dec,
    event_from_trade_update,
    order_from_model,
    position_from_model,
)
from magellan_daemon.adapters.alpaca.corporate import actions_from_set, activity_from_json
from magellan_daemon.domain import (
    AccountActivity,
    AccountInfo,
    BrokerEvent,
    BrokerOrder,
    BrokerPosition,
    Quote,
)
from magellan_daemon.errors import (
    BrokerDuplicate,
    BrokerError,
    BrokerNotFound,
    BrokerRejected,
    BrokerRetryable,
)
from magellan_sim.errors import SimError
from magellan_sim.exchange.exchange import Exchange


class _Fields:
    """Attribute access over a wire dict (a field it lacks reads as None, as in a model)."""

    __slots__ = ("_data",)

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getattr__(self, name: str) -> Any:
        return self._data.get(name)


def _order(data: dict[str, Any]) -> BrokerOrder:
    return order_from_model(_Fields(data))


def _broker_error(exc: SimError) -> BrokerError:
    if exc.status == 404:
        return BrokerNotFound(exc.message, exc.status, exc.code)
    if exc.status == 422 and "client_order_id must be unique" in exc.message:
        return BrokerDuplicate(exc.message, exc.status, exc.code)
    if exc.status == 429 or exc.status >= 500:
        return BrokerRetryable(exc.message, exc.status, exc.code)
    return BrokerRejected(exc.message, exc.status, exc.code)


class InProcessBroker:
    """One account of an in-process ``Exchange`` with ``AlpacaBroker``'s async calls."""

    def __init__(
        self, exchange: Exchange, key: str, on_event: Callable[[BrokerEvent], object]
    ) -> None:
        self.account = key
        self._exchange = exchange
        self._key = key
        self._on_event = on_event
        exchange.add_listener(self._listen)

    def _listen(self, key: str, message: dict[str, Any]) -> None:
        if key == self._key:
            self._on_event(event_from_trade_update(message["data"]))

    @staticmethod
    def _call(fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except SimError as exc:
            raise _broker_error(exc) from None

    def close(self) -> None:
        """Nothing to release (``AlpacaBroker`` has the same call)."""

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
        """POST /v2/orders."""
        return _order(
            self._call(
                lambda: self._exchange.orders.submit_order(
                    self._key,
                    symbol=symbol,
                    qty=Decimal(qty),
                    notional=None,
                    side=side,
                    type=order_type,
                    time_in_force=time_in_force,
                    limit_price=None,
                    stop_price=stop_price,
                    client_order_id=client_order_id,
                    extended_hours=False,
                )
            )
        )

    async def order_by_client_id(self, client_order_id: str) -> BrokerOrder:
        """GET /v2/orders:by_client_order_id."""
        return _order(
            self._call(
                lambda: self._exchange.orders.get_order_by_client_id(self._key, client_order_id)
            )
        )

    async def replace_order(
        self,
        broker_order_id: str,
        *,
        qty: int,
        stop_price: Decimal | None,
        client_order_id: str,
    ) -> BrokerOrder:
        """PATCH /v2/orders/{id}: the new order."""
        return _order(
            self._call(
                lambda: self._exchange.orders.replace_order(
                    self._key,
                    broker_order_id,
                    qty=Decimal(qty),
                    limit_price=None,
                    stop_price=stop_price,
                    time_in_force=None,
                    client_order_id=client_order_id,
                )
            )
        )

    async def cancel_order(self, broker_order_id: str) -> None:
        """DELETE /v2/orders/{id}."""
        self._call(lambda: self._exchange.orders.cancel_order(self._key, broker_order_id))

    async def account_info(self) -> AccountInfo:
        """GET /v2/account."""
        a = self._call(lambda: self._exchange.accounts.get_account(self._key))
        return AccountInfo(
            equity=dec(a["equity"]) or Decimal(0),
            buying_power=dec(a["buying_power"]) or Decimal(0),
            cash=dec(a["cash"]) or Decimal(0),
        )

    async def positions(self) -> list[BrokerPosition]:
        """GET /v2/positions."""
        views = self._call(lambda: self._exchange.accounts.list_positions(self._key))
        return [position_from_model(_Fields(p)) for p in views]

    async def corporate_actions(
        self, symbols: Sequence[str], start: date, end: date
    ) -> list[CorporateAction]:
        """GET /v1/corporate-actions: splits and cash dividends of ``symbols``, ex-date from
        ``start`` to ``end``, every page."""
        found: list[CorporateAction] = []
        token: str | None = None
        while True:
            reply = self._call(
                lambda t=token: self._exchange.data.corporate_actions(
                    symbols=list(symbols),
                    types=list(ACTION_TYPES),
                    start=start,
                    end=end,
                    ids=None,
                    limit=1000,
                    sort="asc",
                    page_token=t,
                )
            )
            found += actions_from_set(reply["corporate_actions"])
            token = reply["next_page_token"]
            if token is None:
                return found

    async def activities(self, activity_type: str, after: datetime) -> list[AccountActivity]:
        """GET /v2/account/activities/{type} after ``after``, oldest first (one page)."""
        items = self._call(
            lambda: self._exchange.accounts.activities(
                self._key, activity_types=[activity_type], after=after, direction="asc"
            )
        )
        return [activity_from_json(a) for a in items]

    async def latest_quote(self, symbol: str) -> Quote | None:
        """The quote the simulator shows around the latest completed minute."""
        q = self._exchange.data.latest_quotes([symbol])["quotes"].get(symbol)
        if q is None:
            return None
        return Quote(bid=q["bp"], ask=q["ap"], bid_size=q["bs"], ask_size=q["as"])
