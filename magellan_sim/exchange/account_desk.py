"""The exchange's account desk: the account's balances, its positions (and closing them),
and its activities."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from magellan_core.clock import Clock
from magellan_sim.errors import SimError, invalid, not_found
from magellan_sim.exchange.account import Account, Fill, NonTrade
from magellan_sim.exchange.assets import Assets
from magellan_sim.exchange.book import AccountBook
from magellan_sim.exchange.order_desk import OrderDesk
from magellan_sim.exchange.orders import ZERO
from magellan_sim.exchange.requests import OrderRequest
from magellan_sim.exchange.valuation import Valuation
from magellan_sim.exchange.wire import account_dict, activity_dict, non_trade_dict, position_dict
from magellan_sim.market.calendar import SessionCalendar

MAX_ACTIVITY_PAGE = 100
NON_TRADE_TYPES = frozenset({"SPLIT", "CIL", "DIV"})


class AccountDesk:
    """Accounts, positions and activities, as the REST API asks for them."""

    def __init__(
        self,
        clock: Clock,
        calendar: SessionCalendar,
        *,
        advance: Callable[[], None],
        accounts: AccountBook,
        valuation: Valuation,
        assets: Assets,
        orders: OrderDesk,
    ) -> None:
        self._clock = clock
        self._calendar = calendar
        self._advance = advance
        self._accounts = accounts
        self._valuation = valuation
        self._assets = assets
        self._orders = orders  # closing a position submits its liquidating order

    def get_account(self, key: str) -> dict[str, Any]:
        """The account, valued at the latest completed bars."""
        self._advance()
        account = self._accounts.open(key)
        return account_dict(account, self._valuation.long_market_value(account, self._clock.now()))

    def _position_view(self, account: Account, symbol: str, now: datetime) -> dict[str, Any]:
        position = account.positions[symbol]
        price = self._valuation.price(symbol, now) or position.avg_entry_price
        previous_close = self._calendar.previous_close(self._calendar.next_session(now).open)
        before = self._valuation.price(symbol, previous_close, now) if previous_close else None
        lastday = before or price
        held = account.held_for_orders(symbol)
        return position_dict(position, price, lastday, max(position.qty - held, ZERO))

    def list_positions(self, key: str) -> list[dict[str, Any]]:
        """Open positions, by symbol."""
        self._advance()
        account = self._accounts.open(key)
        now = self._clock.now()
        return [self._position_view(account, s, now) for s in sorted(account.positions)]

    def get_position(self, key: str, symbol_or_asset_id: str) -> dict[str, Any]:
        """One position (404 "position does not exist")."""
        self._advance()
        account = self._accounts.open(key)
        symbol = self._assets.symbol(symbol_or_asset_id)
        if symbol is None or symbol not in account.positions:
            raise not_found("position does not exist")
        return self._position_view(account, symbol, self._clock.now())

    def close_position(
        self,
        key: str,
        symbol_or_asset_id: str,
        *,
        qty: Decimal | None,
        percentage: Decimal | None,
    ) -> dict[str, Any]:
        """Submit the liquidating market sell (all, ``qty`` or ``percentage``) and return it."""
        self._advance()
        account = self._accounts.open(key)
        symbol = self._assets.symbol(symbol_or_asset_id)
        position = account.positions.get(symbol) if symbol else None
        if symbol is None or position is None:
            raise not_found("position does not exist")
        amount = position.liquidation_qty(qty=qty, percentage=percentage)
        liquidation = OrderRequest(
            symbol=symbol,
            qty=amount,
            notional=None,
            side="sell",
            type="market",
            time_in_force="day",
            limit_price=None,
            stop_price=None,
            client_order_id=None,
            extended_hours=False,
        )
        return self._orders.submit_request(key, liquidation, refusable=False)

    def close_all_positions(self, key: str, *, cancel_orders: bool) -> list[dict[str, Any]]:
        """Liquidate every position: 207 items ``{"symbol","status","body"}``."""
        self._advance()
        if cancel_orders:
            self._orders.cancel_all_orders(key)
        out = []
        for symbol in sorted(self._accounts.open(key).positions):
            try:
                order = self.close_position(key, symbol, qty=None, percentage=None)
                out.append({"symbol": symbol, "status": 200, "body": order})
            except SimError as error:
                out.append({"symbol": symbol, "status": error.status, "body": error.body()})
        return out

    # -- activities --------------------------------------------------------------------------

    def activities(
        self,
        key: str,
        *,
        activity_types: list[str] | None,
        after: datetime | None = None,
        until: datetime | None = None,
        direction: str = "desc",
        page_size: int = 100,
        page_token: str | None = None,
    ) -> list[dict[str, Any]]:
        """FILL activities and the non-trade ones of corporate actions (SPLIT, CIL, DIV),
        by time, paged by the last id seen."""
        self._advance()
        account = self._accounts.open(key)
        if direction not in ("asc", "desc"):
            raise invalid("direction must be asc or desc")
        if not 1 <= page_size <= MAX_ACTIVITY_PAGE:
            raise invalid(f"page_size must be between 1 and {MAX_ACTIVITY_PAGE}")
        wanted = set(activity_types) if activity_types else None
        items: list[tuple[datetime, str, Fill | NonTrade]] = []
        if wanted is None or "FILL" in wanted:
            fills = account.select_fills(after=after, until=until, direction="asc")
            items += [(f.transaction_time, f.id, f) for f in fills]
        types = NON_TRADE_TYPES if wanted is None else NON_TRADE_TYPES & wanted
        if types:
            booked = account.select_non_trades(types=types, after=after, until=until)
            items += [(n.booked_at, n.id, n) for n in booked]
        # fills and non-trades each come in time order: a stable sort by time merges them
        items.sort(key=lambda item: item[0])
        if direction == "desc":
            items.reverse()
        if page_token is not None:
            ids = [item[1] for item in items]
            if page_token not in ids:
                raise invalid("invalid page_token")
            items = items[ids.index(page_token) + 1 :]
        return [
            activity_dict(r) if isinstance(r, Fill) else non_trade_dict(r)
            for _, _, r in items[:page_size]
        ]
