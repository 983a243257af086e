"""Order submission parameters and their stateless validation (422 errors naming the field)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from decimal import Decimal

from magellan_sim.errors import UNPROCESSABLE, SimError, invalid
from magellan_sim.exchange.orders import ORDER_TYPES, SIDES, TIMES_IN_FORCE
from magellan_sim.market.calendar import NEW_YORK

MAX_CLIENT_ORDER_ID = 128
MAX_QTY = Decimal(10_000_000)
MAX_PRICE = Decimal(1_000_000)
OPG_OPENS = time(19, 0)
OPG_CLOSES = time(9, 28)


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderRequest:
    """What a submit (or a replace, after merging with the old order) asks for."""

    symbol: str
    qty: Decimal | None
    notional: Decimal | None
    side: str
    type: str
    time_in_force: str
    limit_price: Decimal | None
    stop_price: Decimal | None
    client_order_id: str | None
    extended_hours: bool


def validate(request: OrderRequest) -> None:
    """Raise SimError 422 (code 40010001) for a malformed request."""
    if not request.symbol:
        raise invalid("symbol is required")
    if request.side not in SIDES:
        raise invalid(f"invalid side: {request.side!r} (side must be buy or sell)")
    if request.type not in ORDER_TYPES:
        raise invalid(
            f"invalid order type: {request.type!r} (type must be one of market, "
            "limit, stop, stop_limit)"
        )
    if request.time_in_force not in TIMES_IN_FORCE:
        raise invalid(
            f"invalid time_in_force: {request.time_in_force!r} (supported: day, gtc, opg, ioc)"
        )
    _validate_amount(request)
    _validate_prices(request)
    if request.client_order_id is not None and not (
        0 < len(request.client_order_id) <= MAX_CLIENT_ORDER_ID
    ):
        raise invalid(f"client_order_id must be 1 to {MAX_CLIENT_ORDER_ID} characters")
    if request.extended_hours and (request.type != "limit" or request.time_in_force != "day"):
        raise invalid("extended hours order must be DAY limit orders")


def _validate_amount(request: OrderRequest) -> None:
    if request.qty is None and request.notional is None:
        raise invalid("qty is required")
    if request.qty is not None and request.notional is not None:
        raise invalid("only one of qty or notional may be given")
    simple = request.type == "market" and request.time_in_force == "day"
    if request.notional is not None:
        if not 0 < request.notional <= MAX_QTY * 100:
            raise invalid("notional must be > 0")
        if not simple or request.side != "buy":
            raise invalid("notional orders must be DAY market buy orders")
        return
    qty = request.qty
    assert qty is not None
    if not 0 < qty <= MAX_QTY:
        raise invalid("qty must be > 0 and at most 10000000")
    if qty != qty.to_integral_value() and not simple:
        raise invalid("fractional qty orders must be DAY market orders")


def _validate_prices(request: OrderRequest) -> None:
    needs_limit = request.type in ("limit", "stop_limit")
    needs_stop = request.type in ("stop", "stop_limit")
    for name, value, needed in (
        ("limit_price", request.limit_price, needs_limit),
        ("stop_price", request.stop_price, needs_stop),
    ):
        if needed and value is None:
            raise invalid(f"{name} is required for {request.type} orders")
        if not needed and value is not None:
            raise invalid(f"{request.type} orders require no {name.replace('_', ' ')}")
        if value is not None and not 0 < value <= MAX_PRICE:
            raise invalid(f"{name} must be > 0 and at most {MAX_PRICE}")


def check_opg_window(now: datetime) -> None:
    """OPG orders are accepted only from 19:00 to 09:28 New York time."""
    local = now.astimezone(NEW_YORK).time()
    if OPG_CLOSES <= local < OPG_OPENS:
        raise SimError(
            422, UNPROCESSABLE, "opg orders must be submitted after 7:00pm and before 9:28am"
        )
