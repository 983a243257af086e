"""The exchange's account desk: the account's balances, its positions (and closing them),
and its activities."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from magellan_sim.errors import SimError, invalid, not_found
from magellan_sim.exchange.account import Account, Fill, NonTrade
from magellan_sim.exchange.order_desk import OrderDesk
from magellan_sim.exchange.orders import ZERO
from magellan_sim.exchange.requests import OrderRequest
from magellan_sim.exchange.wire import account_dict, activity_dict, non_trade_dict, position_dict

MAX_ACTIVITY_PAGE = 100
NON_TRADE_TYPES = frozenset({"SPLIT", "CIL", "DIV"})


class AccountDesk(OrderDesk):
    """Accounts, positions and activities, as the REST API asks for them."""

    def get_account(self, key: str) -> dict[str, Any]:
        """The account, valued at the latest completed bars."""
        self.advance()
        account = self._account(key)
        return account_dict(account, self._long_market_value(account, self.clock.now()))

    def _position_view(self, account: Account, symbol: str, now: datetime) -> dict[str, Any]:
        position = account.positions[symbol]
        price = self._price(symbol, now) or position.avg_entry_price
        previous_close = self.calendar.previous_close(self.calendar.next_session(now).open)
        lastday = (self._price(symbol, previous_close, now) if previous_close else None) or price
        held = account.held_for_orders(symbol)
        return position_dict(position, price, lastday, max(position.qty - held, ZERO))

    def list_positions(self, key: str) -> list[dict[str, Any]]:
        """Open positions, by symbol."""
        self.advance()
        account = self._account(key)
        now = self.clock.now()
        return [self._position_view(account, s, now) for s in sorted(account.positions)]

    def get_position(self, key: str, symbol_or_asset_id: str) -> dict[str, Any]:
        """One position (404 "position does not exist")."""
        self.advance()
        account = self._account(key)
        symbol = self._symbol(symbol_or_asset_id)
        if symbol is None or symbol not in account.positions:
            raise not_found("position does not exist")
        return self._position_view(account, symbol, self.clock.now())

    def close_position(
        self,
        key: str,
        symbol_or_asset_id: str,
        *,
        qty: Decimal | None,
        percentage: Decimal | None,
    ) -> dict[str, Any]:
        """Submit the liquidating market sell (all, ``qty`` or ``percentage``) and return it."""
        self.advance()
        account = self._account(key)
        symbol = self._symbol(symbol_or_asset_id)
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
        return self._submit(key, liquidation, refusable=False)

    def close_all_positions(self, key: str, *, cancel_orders: bool) -> list[dict[str, Any]]:
        """Liquidate every position: 207 items ``{"symbol","status","body"}``."""
        self.advance()
        if cancel_orders:
            self.cancel_all_orders(key)
        out = []
        for symbol in sorted(self._account(key).positions):
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
        self.advance()
        account = self._account(key)
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

    # -- market data -------------------------------------------------------------------------
