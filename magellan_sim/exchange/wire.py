"""JSON-ready dicts in Alpaca's wire shapes (money and quantities as strings)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from magellan_sim.exchange.account import Account, Fill, NonTrade, Position
from magellan_sim.exchange.orders import Order
from magellan_sim.market.calendar import NEW_YORK
from magellan_sim.market.market import SimBar

ASSET_NAMESPACE = uuid.UUID("5d0c8f3e-4b7a-4c55-9a63-6f1e2b0d9a11")
# Listing exchanges of the ETFs in the default universe; everything else reports NASDAQ.
ARCA_LISTED = frozenset({"SPY", "IWM", "GLD"})
NYSE_LISTED = frozenset({"AMC", "GME", "CGC", "PLUG", "DNUT", "CVNA", "NKLA", "GOEV"})


def asset_id(symbol: str) -> str:
    """Stable asset UUID for ``symbol``."""
    return str(uuid.uuid5(ASSET_NAMESPACE, symbol))


def ts(t: datetime | None) -> str | None:
    """RFC 3339 in UTC with a ``Z`` suffix."""
    if t is None:
        return None
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def ts_new_york(t: datetime) -> str:
    """RFC 3339 in New York time with its offset (the clock endpoint)."""
    return t.astimezone(NEW_YORK).isoformat()


def dec(value: Decimal | None) -> str | None:
    """A decimal as a plain string without exponent ("100000", "1.5")."""
    if value is None:
        return None
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def exchange_of(symbol: str) -> str:
    """The asset's listing exchange name (AssetExchange enum value)."""
    if symbol in ARCA_LISTED:
        return "ARCA"
    return "NYSE" if symbol in NYSE_LISTED else "NASDAQ"


def order_dict(order: Order) -> dict[str, Any]:
    """The Order object (REST and trade_updates)."""
    return {
        "id": order.id,
        "client_order_id": order.client_order_id,
        "created_at": ts(order.created_at),
        "updated_at": ts(order.updated_at),
        "submitted_at": ts(order.submitted_at),
        "filled_at": ts(order.filled_at),
        "expired_at": ts(order.expired_at),
        "expires_at": ts(order.expires_at),
        "canceled_at": ts(order.canceled_at),
        "failed_at": ts(order.failed_at),
        "replaced_at": ts(order.replaced_at),
        "replaced_by": order.replaced_by,
        "replaces": order.replaces,
        "asset_id": order.asset_id,
        "symbol": order.symbol,
        "asset_class": "us_equity",
        "notional": dec(order.notional),
        "qty": dec(order.qty),
        "filled_qty": dec(order.filled_qty),
        "filled_avg_price": dec(order.filled_avg_price),
        "order_class": "",
        "order_type": order.type,
        "type": order.type,
        "side": order.side,
        "position_intent": "buy_to_open" if order.side == "buy" else "sell_to_close",
        "time_in_force": order.time_in_force,
        "limit_price": dec(order.limit_price),
        "stop_price": dec(order.stop_price),
        "status": order.status,
        "extended_hours": order.extended_hours,
        "legs": None,
        "trail_percent": None,
        "trail_price": None,
        "hwm": None,
        "subtag": None,
        "source": None,
    }


def position_dict(
    position: Position, price: Decimal, lastday_price: Decimal, qty_available: Decimal
) -> dict[str, Any]:
    """The Position object, valued at ``price``."""
    qty = position.qty
    market_value = qty * price
    cost = position.cost
    pl = market_value - cost
    intraday_base = qty * lastday_price
    intraday_pl = market_value - intraday_base
    return {
        "asset_id": position.asset_id,
        "symbol": position.symbol,
        "exchange": exchange_of(position.symbol),
        "asset_class": "us_equity",
        "asset_marginable": False,
        "qty": dec(qty),
        "qty_available": dec(qty_available),
        "avg_entry_price": dec(_money(position.avg_entry_price)),
        "side": "long",
        "market_value": dec(_money(market_value)),
        "cost_basis": dec(_money(cost)),
        "unrealized_pl": dec(_money(pl)),
        "unrealized_plpc": dec(_ratio(pl, cost)),
        "unrealized_intraday_pl": dec(_money(intraday_pl)),
        "unrealized_intraday_plpc": dec(_ratio(intraday_pl, intraday_base)),
        "current_price": dec(price),
        "lastday_price": dec(lastday_price),
        "change_today": dec(_ratio(price - lastday_price, lastday_price)),
    }


def account_dict(account: Account, long_market_value: Decimal) -> dict[str, Any]:
    """The TradeAccount object (cash account: multiplier 1, buying power = free cash)."""
    equity = account.cash + long_market_value
    buying_power = dec(_money(account.buying_power()))
    return {
        "id": account.id,
        "account_number": account.account_number,
        "status": "ACTIVE",
        "crypto_status": "INACTIVE",
        "currency": "USD",
        "cash": dec(_money(account.cash)),
        "portfolio_value": dec(_money(equity)),
        "equity": dec(_money(equity)),
        "last_equity": dec(_money(account.last_equity)),
        "buying_power": buying_power,
        "regt_buying_power": buying_power,
        "daytrading_buying_power": "0",
        "non_marginable_buying_power": buying_power,
        "options_buying_power": "0",
        "long_market_value": dec(_money(long_market_value)),
        "short_market_value": "0",
        "position_market_value": dec(_money(long_market_value)),
        "initial_margin": "0",
        "maintenance_margin": "0",
        "last_maintenance_margin": "0",
        "sma": "0",
        "multiplier": "1",
        "accrued_fees": "0",
        "pending_transfer_in": "0",
        "pending_transfer_out": "0",
        "pattern_day_trader": False,
        "daytrade_count": 0,
        "trading_blocked": False,
        "transfers_blocked": False,
        "account_blocked": False,
        "trade_suspended_by_user": False,
        "shorting_enabled": False,
        "created_at": ts(account.created_at),
    }


def activity_dict(fill: Fill) -> dict[str, Any]:
    """A FILL account activity."""
    return {
        "id": fill.id,
        "activity_type": "FILL",
        "transaction_time": ts(fill.transaction_time),
        "type": "fill" if fill.leaves_qty == 0 else "partial_fill",
        "price": dec(fill.price),
        "qty": dec(fill.qty),
        "side": fill.side,
        "symbol": fill.symbol,
        "leaves_qty": dec(fill.leaves_qty),
        "order_id": fill.order_id,
        "cum_qty": dec(fill.cum_qty),
        "order_status": fill.order_status,
    }


def non_trade_dict(activity: NonTrade) -> dict[str, Any]:
    """A non-trade account activity (SPLIT, CIL, DIV) in Alpaca's NTA shape."""
    return {
        "id": activity.id,
        "activity_type": activity.activity_type,
        "date": activity.day.isoformat(),
        "net_amount": dec(activity.net_amount),
        "description": activity.description,
        "status": "executed",
        "symbol": activity.symbol,
        "qty": dec(activity.qty),
        "price": dec(activity.price),
        "per_share_amount": dec(activity.per_share_amount),
    }


def asset_dict(symbol: str) -> dict[str, Any]:
    """The Asset object (every simulated symbol is an active, tradable US equity)."""
    return {
        "id": asset_id(symbol),
        "class": "us_equity",
        "exchange": exchange_of(symbol),
        "symbol": symbol,
        "name": f"{symbol} (simulated)",
        "status": "active",
        "tradable": True,
        "marginable": False,
        "shortable": False,
        "easy_to_borrow": False,
        "fractionable": True,
        "maintenance_margin_requirement": 100,
        "attributes": [],
    }


def bar_dict(bar: SimBar) -> dict[str, Any]:
    """A REST bar ``{t,o,h,l,c,v,n,vw}``."""
    return {
        "t": ts(bar.t),
        "o": bar.open,
        "h": bar.high,
        "l": bar.low,
        "c": bar.close,
        "v": bar.volume,
        "n": bar.trade_count,
        "vw": bar.vwap,
    }


def stream_bar_dict(bar: SimBar) -> dict[str, Any]:
    """A streamed minute bar; ``t`` stays a datetime (the server packs a msgpack Timestamp)."""
    return {
        "T": "b",
        "S": bar.symbol,
        "o": bar.open,
        "h": bar.high,
        "l": bar.low,
        "c": bar.close,
        "v": bar.volume,
        "n": bar.trade_count,
        "vw": bar.vwap,
        "t": bar.t,
    }


def _money(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.0001"))


def _ratio(numerator: Decimal, denominator: Decimal) -> Decimal:
    if not denominator:
        return Decimal(0)
    return (numerator / denominator).quantize(Decimal("0.0000000001"))
