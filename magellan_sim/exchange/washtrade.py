"""Alpaca's wash-trade protection as a pure rule (alpaca-wire 3.4).

Alpaca refuses a new order that could execute against one of the account's own open orders
on the same symbol and the opposite side: 403 ``potential wash trade detected. use complex
orders``. Only a few rows of its rule table are documented (a limit buy against a resting
sell stop, a sell stop against a resting buy limit, a market order against any opposite
order, crossing limits), so the simulator takes the stricter reading for the rest: two
opposite orders may rest together only when both are limits that do not cross. A market,
stop or stop-limit order is therefore refused against any opposite open order, and a limit
against an opposite market, stop or stop-limit. Complex orders and trailing stops, exempt
at Alpaca, do not exist in the simulator.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

MESSAGE = "potential wash trade detected. use complex orders"


@dataclass(frozen=True, slots=True, kw_only=True)
class Shape:
    """What the rule looks at in an order: its side, type and limit price."""

    side: str
    type: str
    limit_price: Decimal | None = None


def could_trade(new: Shape, resting: Shape) -> bool:
    """Whether ``new`` could execute against ``resting`` (same symbol assumed): opposite
    sides, unless both are limits whose prices do not cross (buy limit < sell limit)."""
    if new.side == resting.side:
        return False
    if new.type == "limit" and resting.type == "limit":
        buy, sell = (new, resting) if new.side == "buy" else (resting, new)
        if buy.limit_price is None or sell.limit_price is None:
            return True  # a limit without a price is invalid; refuse rather than guess
        return buy.limit_price >= sell.limit_price
    return True


def conflicting(new: Shape, resting: Iterable[tuple[str, Shape]]) -> str | None:
    """The id of the first resting order ``new`` could trade with, or None."""
    for order_id, shape in resting:
        if could_trade(new, shape):
            return order_id
    return None
