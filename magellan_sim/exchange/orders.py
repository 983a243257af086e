"""The order entity and how the bar-matching rule of ``magellan_core.matching`` applies to
it (which price, if any, a bar gives an order)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from magellan_core.matching import limit_price, slippage_factor, stop_limit_price, stop_start
from magellan_sim.market.market import SimBar

# Non-terminal: ``pending_new`` is a replacement waiting for its replace to complete, the
# ``pending_*`` ones a live order with a cancel or replace in flight.
OPEN_STATUSES = frozenset(
    {"accepted", "new", "partially_filled", "pending_new", "pending_cancel", "pending_replace"}
)
ORDER_TYPES = frozenset({"market", "limit", "stop", "stop_limit"})
TIMES_IN_FORCE = frozenset({"day", "gtc", "opg", "ioc"})
SIDES = frozenset({"buy", "sell"})
ZERO = Decimal(0)


@dataclass(slots=True, kw_only=True)
class Order:
    """One order and its mutable lifecycle state (the exchange owns and mutates it)."""

    id: str
    client_order_id: str
    account_key: str
    symbol: str
    asset_id: str
    side: str
    type: str
    time_in_force: str
    qty: Decimal | None
    notional: Decimal | None
    limit_price: Decimal | None
    stop_price: Decimal | None
    extended_hours: bool
    status: str
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime
    # Bars starting before this instant are never used for this order; None while the
    # order waits for the next session's open (accepted while the market was closed).
    active_from: datetime | None
    expires_at: datetime | None = None
    filled_at: datetime | None = None
    expired_at: datetime | None = None
    canceled_at: datetime | None = None
    failed_at: datetime | None = None
    replaced_at: datetime | None = None
    replaced_by: str | None = None
    replaces: str | None = None
    filled_qty: Decimal = ZERO
    filled_value: Decimal = ZERO
    triggered: bool = False
    reserved_price: Decimal = ZERO
    executions: list[str] = field(default_factory=list)

    @property
    def is_open(self) -> bool:
        """Not yet in a terminal state."""
        return self.status in OPEN_STATUSES

    @property
    def remaining_qty(self) -> Decimal:
        """Shares still to fill (0 for a notional order, which fills in one go)."""
        return ZERO if self.qty is None else self.qty - self.filled_qty

    @property
    def filled_avg_price(self) -> Decimal | None:
        """Volume-weighted average fill price so far."""
        if not self.filled_qty:
            return None
        return price_decimal(float(self.filled_value / self.filled_qty))

    def reserved_value(self) -> Decimal:
        """Buying power an open buy order holds back."""
        if self.side != "buy" or not self.is_open:
            return ZERO
        if self.notional is not None:
            return self.notional
        return self.reserved_price * self.remaining_qty


def price_decimal(price: float) -> Decimal:
    """An execution price as a decimal, to 4 places (sub-penny prints exist in the bars)."""
    return Decimal(repr(round(price, 4)))


def match_price(order: Order, bar: SimBar, slippage_bps: float) -> float | None:
    """Execution price ``bar`` gives ``order``, or None if it does not fill on this bar
    (the rule is ``magellan_core.matching``'s, shared with the signals replay).

    A stop_limit whose stop the bar reaches is marked triggered (and then rests as a limit).
    Market and stop executions pay ``slippage_bps`` against the taker.
    """
    buy = order.side == "buy"
    slip = slippage_factor(buy, slippage_bps)
    if order.type == "market":
        return bar.open * slip
    if order.type == "limit" or (order.type == "stop_limit" and order.triggered):
        return limit_price(buy, bar, float(order.limit_price or 0), at_open_only=False)
    start = stop_start(buy, float(order.stop_price or 0), bar)
    if start is None:
        return None
    if order.type == "stop":
        return start * slip
    order.triggered = True
    return stop_limit_price(buy, start, float(order.limit_price or 0))


def opening_price(order: Order, bar: SimBar) -> float | None:
    """OPG: the opening bar's open, if within the limit of an OPG limit order."""
    if order.type == "limit":
        buy = order.side == "buy"
        return limit_price(buy, bar, float(order.limit_price or 0), at_open_only=True)
    return bar.open
