"""The checks an order passes before it is accepted: buying power, shares available to sell
(held_for_orders, alpaca-wire 3.3) and wash-trade protection (3.4).

Each raises the ``SimError`` Alpaca would answer with; none changes anything.
"""

from __future__ import annotations

from decimal import Decimal

from magellan_sim.errors import FORBIDDEN, UNPROCESSABLE, SimError
from magellan_sim.exchange import washtrade
from magellan_sim.exchange.account import Account
from magellan_sim.exchange.orders import ZERO, Order
from magellan_sim.exchange.requests import OrderRequest
from magellan_sim.exchange.wire import dec

CENT = Decimal("0.01")


def reserved_price(request: OrderRequest, last: Decimal | None) -> Decimal:
    """Per-share price a buy holds back: its limit, its stop (or the last price if higher),
    else the last price; 0 for sells and notional buys. Raises 422 for a market buy of a
    symbol that has no price yet."""
    if request.side != "buy" or request.notional is not None:
        return ZERO
    if request.limit_price is not None:
        return request.limit_price
    if request.stop_price is not None:
        return max(request.stop_price, last or ZERO)
    if last is None:
        raise SimError(422, UNPROCESSABLE, f"no market price for {request.symbol} yet")
    return last


def check_affordable(
    account: Account, request: OrderRequest, reserved: Decimal, replacing: Order | None
) -> None:
    """Raise 403 when a buy costs more than the buying power, or a sell asks for more shares
    than are not already held by other open sell orders. A replace counts the replaced
    order's own reservation as available."""
    if request.side == "buy":
        cost = request.notional if request.notional is not None else reserved * (request.qty or 0)
        power = account.buying_power() + (replacing.reserved_value() if replacing else ZERO)
        if cost > power:
            raise SimError(
                403,
                FORBIDDEN,
                "insufficient buying power",
                buying_power=dec(power.quantize(CENT)),
                cost_basis=dec(cost.quantize(CENT)),
            )
        return
    excluding = replacing.id if replacing else None
    held = account.held_for_orders(request.symbol, excluding)
    holders = account.held_sell_orders(request.symbol, excluding)
    existing = account.position_qty(request.symbol)
    available = max(existing - held, ZERO)
    requested = request.qty or ZERO
    if requested > available:
        raise SimError(
            403,
            FORBIDDEN,
            f"insufficient qty available for order (requested: {dec(requested)}, "
            f"available: {dec(available)})",
            available=dec(available),
            existing_qty=dec(existing),
            held_for_orders=dec(held),
            related_orders=[o.id for o in holders],
            symbol=request.symbol,
        )


def check_wash_trade(account: Account, request: OrderRequest, excluding: str | None) -> None:
    """Raise 403 (40310000) when the request could trade with one of the account's own open
    orders on the symbol (any non-terminal status), other than ``excluding``."""
    new = washtrade.Shape(side=request.side, type=request.type, limit_price=request.limit_price)
    resting = (
        (o.id, washtrade.Shape(side=o.side, type=o.type, limit_price=o.limit_price))
        for o in account.open_orders()
        if o.symbol == request.symbol and o.id != excluding
    )
    existing = washtrade.conflicting(new, resting)
    if existing is not None:
        raise SimError(
            403,
            FORBIDDEN,
            washtrade.MESSAGE,
            existing_order_id=existing,
            reject_reason="opposite side order exists that could trade with this order",
        )
