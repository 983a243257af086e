"""alpaca-py's loose types (``str | float``, enums, raw dicts) to ``domain`` values."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from magellan_daemon.domain import (
    BrokerEvent,
    BrokerFill,
    BrokerOrder,
    BrokerOrderId,
    BrokerPosition,
    ClientOrderId,
    ExecutionId,
)


def dec(value: Any) -> Decimal | None:
    """A Decimal from alpaca-py's str/float/None (floats via their shortest repr); raises
    ValueError for what is no finite number (NaN and infinities compare with nothing)."""
    if value is None or value == "":
        return None
    number = Decimal(str(value))
    if not number.is_finite():
        raise ValueError(f"{value!r} is not a finite number")
    return number


def _amount(value: Any, name: str) -> Decimal | None:
    """A quantity or price of a trade update: a finite number >= 0, or absent."""
    number = dec(value)
    if number is not None and number < 0:
        raise ValueError(f"{name} {value!r} is negative")
    return number


def _enum(value: Any) -> str:
    return str(getattr(value, "value", value) or "")


def _time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = str(value).replace("Z", "+00:00")
    # Alpaca sends nanoseconds; Python parses at most microseconds.
    if "." in text:
        head, _, tail = text.partition(".")
        digits = "".join(c for c in tail if c.isdigit())
        rest = tail[len(digits) :]
        text = f"{head}.{digits[:6]}{rest}"
    return datetime.fromisoformat(text).astimezone(UTC)


def bar_time(value: Any) -> datetime:
    """A bar's ``t`` as Alpaca sends it (RFC 3339, ``Z``, up to nanoseconds), in UTC."""
    return _time(value)


def order_from_model(order: Any) -> BrokerOrder:
    """An alpaca-py ``Order`` model to a ``BrokerOrder``."""
    return BrokerOrder(
        broker_order_id=BrokerOrderId(str(order.id)),
        client_order_id=ClientOrderId(order.client_order_id),
        symbol=order.symbol or "",
        side=_enum(order.side),
        order_type=_enum(order.type or order.order_type),
        qty=dec(order.qty) or Decimal(0),
        filled_qty=dec(order.filled_qty) or Decimal(0),
        filled_avg_price=dec(order.filled_avg_price),
        status=_enum(order.status),
        stop_price=dec(order.stop_price),
        submitted_at=_time(order.submitted_at),
        updated_at=_time(order.updated_at),
        replaced_by=None if order.replaced_by is None else BrokerOrderId(str(order.replaced_by)),
        replaces=None if order.replaces is None else BrokerOrderId(str(order.replaces)),
    )


def event_from_trade_update(data: Mapping[str, Any]) -> BrokerEvent:
    """A raw ``trade_updates`` ``data`` dict to a ``BrokerEvent`` (raises on a bad frame)."""
    order = data["order"]
    execution_id = data.get("execution_id")
    # A refused cancel or replace keeps its own name: the state machine puts the order back
    # to the status the broker reports with it (``order_status``). Rewritten as that status's
    # event (``new``) it was judged older than ``pending_cancel`` and never applied.
    event = str(data["event"])
    return BrokerEvent(
        event=event,
        client_order_id=ClientOrderId(str(order["client_order_id"])),
        broker_order_id=BrokerOrderId(str(order["id"])),
        ts_event=_time(data.get("timestamp") or order.get("updated_at")),
        source="stream",
        symbol=str(order.get("symbol") or ""),
        side=str(order.get("side") or ""),
        execution_id=None if not execution_id else ExecutionId(str(execution_id)),
        cum_filled_qty=_amount(order.get("filled_qty"), "filled_qty"),
        filled_avg_price=_amount(order.get("filled_avg_price"), "filled_avg_price"),
        price=_amount(data.get("price"), "price"),
        qty=_amount(data.get("qty"), "qty"),
        replaced_by=(
            None if not order.get("replaced_by") else BrokerOrderId(str(order["replaced_by"]))
        ),
        order_status=str(order.get("status") or ""),
    )


def fill_from_activity(activity: Mapping[str, Any]) -> BrokerFill:
    """A raw FILL activity dict to a ``BrokerFill``."""
    return BrokerFill(
        activity_id=str(activity["id"]),
        broker_order_id=BrokerOrderId(str(activity["order_id"])),
        symbol=str(activity["symbol"]),
        side=str(activity["side"]),
        qty=Decimal(str(activity["qty"])),
        price=Decimal(str(activity["price"])),
        cum_qty=Decimal(str(activity["cum_qty"])),
        transaction_time=_time(activity["transaction_time"]),
    )


def position_from_model(position: Any) -> BrokerPosition:
    """An alpaca-py ``Position`` to a ``BrokerPosition`` (short positions are negative)."""
    return BrokerPosition(
        symbol=position.symbol,
        qty=dec(position.qty) or Decimal(0),
        avg_entry_price=dec(position.avg_entry_price) or Decimal(0),
        current_price=dec(position.current_price),
    )
