"""The keyword arguments of ``OrderDesk.submit_order``/``replace_order`` from a JSON body.

Unknown fields are ignored, as Alpaca does; fields of features the simulator does not have
(bracket/OCO/OTO legs, trailing stops) are refused with 422 rather than silently dropped,
because ignoring a stop-loss leg would change what the order means.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from magellan_sim.server.params import (
    invalid,
    to_bool,
    to_choice,
    to_decimal,
    to_str,
)

SIDES = frozenset({"buy", "sell"})
ORDER_TYPES = frozenset({"market", "limit", "stop", "stop_limit"})
TIMES_IN_FORCE = frozenset({"day", "gtc", "opg", "cls", "ioc", "fok"})
SIMPLE_CLASSES = frozenset({"", "simple"})
UNSUPPORTED_FIELDS = ("take_profit", "stop_loss", "trail_price", "trail_percent", "legs")
CLIENT_ORDER_ID_MAX = 128


def _refuse_unsupported(body: dict[str, Any]) -> None:
    order_class = body.get("order_class")
    if order_class is not None and not isinstance(order_class, str):
        raise invalid("order_class must be a string")
    if order_class is not None and order_class not in SIMPLE_CLASSES:
        raise invalid(f"order_class {order_class!r} is not supported by the simulator")
    if body.get("type") == "trailing_stop":
        raise invalid("type 'trailing_stop' is not supported by the simulator")
    for field in UNSUPPORTED_FIELDS:
        if body.get(field) is not None:
            raise invalid(f"{field} is not supported by the simulator")


def submit_kwargs(body: dict[str, Any]) -> dict[str, Any]:
    """Validated keyword arguments for ``OrderDesk.submit_order``."""
    _refuse_unsupported(body)
    symbol = to_str(body.get("symbol"), "symbol", max_len=32)
    if symbol is None:
        raise invalid("symbol is required")
    side = to_choice(body.get("side"), "side", SIDES)
    if side is None:
        raise invalid("side is required")
    order_type = to_choice(body.get("type", body.get("order_type")), "type", ORDER_TYPES)
    if order_type is None:
        raise invalid("type is required")
    tif = to_choice(body.get("time_in_force"), "time_in_force", TIMES_IN_FORCE)
    if tif is None:
        raise invalid("time_in_force is required")
    qty = to_decimal(body.get("qty"), "qty")
    notional = to_decimal(body.get("notional"), "notional")
    if (qty is None) == (notional is None):
        raise invalid("qty or notional is required" if qty is None else "qty or notional only")
    return {
        "symbol": symbol.upper(),
        "qty": qty,
        "notional": notional,
        "side": side,
        "type": order_type,
        "time_in_force": tif,
        "limit_price": _price(body, "limit_price"),
        "stop_price": _price(body, "stop_price"),
        "client_order_id": to_str(
            body.get("client_order_id"), "client_order_id", max_len=CLIENT_ORDER_ID_MAX
        ),
        "extended_hours": bool(to_bool(body.get("extended_hours"), "extended_hours")),
    }


def replace_kwargs(body: dict[str, Any]) -> dict[str, Any]:
    """Validated keyword arguments for ``OrderDesk.replace_order``."""
    if body.get("trail") is not None:
        raise invalid("trail is not supported by the simulator")
    kwargs = {
        "qty": to_decimal(body.get("qty"), "qty"),
        "limit_price": _price(body, "limit_price"),
        "stop_price": _price(body, "stop_price"),
        "time_in_force": to_choice(body.get("time_in_force"), "time_in_force", TIMES_IN_FORCE),
        "client_order_id": to_str(
            body.get("client_order_id"), "client_order_id", max_len=CLIENT_ORDER_ID_MAX
        ),
    }
    if all(value is None for value in kwargs.values()):
        raise invalid("qty, limit_price, stop_price, time_in_force or client_order_id is required")
    return kwargs


def _price(body: dict[str, Any], field: str) -> Decimal | None:
    return to_decimal(body.get(field), field)
