"""Accounts and positions: cash, holdings with average entry price, fills recorded."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_DOWN, Decimal

from magellan_sim.errors import invalid
from magellan_sim.exchange.orders import ZERO, Order


@dataclass(slots=True, kw_only=True)
class Position:
    """A long holding; ``cost`` is the total cost basis of the shares held."""

    symbol: str
    asset_id: str
    qty: Decimal
    cost: Decimal

    @property
    def avg_entry_price(self) -> Decimal:
        """Average entry price per share."""
        return self.cost / self.qty if self.qty else ZERO

    def liquidation_qty(self, *, qty: Decimal | None, percentage: Decimal | None) -> Decimal:
        """Shares a close-position sells: all, ``qty``, or ``percentage`` of them (whole
        shares for a whole position). Raises 422 for both or a bad percentage."""
        if qty is not None and percentage is not None:
            raise invalid("only one of qty or percentage may be given")
        if qty is not None:
            return qty
        if percentage is None:
            return self.qty
        if not 0 < percentage <= 100:
            raise invalid("percentage must be between 0 and 100")
        amount = self.qty * percentage / 100
        if self.qty == self.qty.to_integral_value():
            amount = amount.to_integral_value(rounding=ROUND_DOWN)
        if amount <= 0:
            raise invalid("percentage gives a qty of 0")
        return amount


@dataclass(frozen=True, slots=True, kw_only=True)
class Fill:
    """One execution, as the FILL activity lists it."""

    id: str
    execution_id: str
    transaction_time: datetime
    order_id: str
    symbol: str
    side: str
    qty: Decimal
    price: Decimal
    cum_qty: Decimal
    leaves_qty: Decimal
    order_status: str


@dataclass(frozen=True, slots=True, kw_only=True)
class NonTrade:
    """A non-trade activity of a corporate action: ``SPLIT`` (``qty`` the change in shares,
    ``price`` the new average entry price), ``CIL`` (cash in lieu of ``qty`` fractional
    post-split shares at ``price``) or ``DIV`` (``qty`` shares at ``per_share_amount``)."""

    id: str
    activity_type: str
    booked_at: datetime
    day: date
    symbol: str
    qty: Decimal
    net_amount: Decimal
    price: Decimal | None
    per_share_amount: Decimal | None
    description: str


@dataclass(slots=True, kw_only=True)
class Account:
    """One API key's paper account (cash account, no margin, no shorting)."""

    key: str
    id: str
    account_number: str
    created_at: datetime
    cash: Decimal
    last_equity: Decimal
    positions: dict[str, Position] = field(default_factory=dict)
    orders: dict[str, Order] = field(default_factory=dict)
    client_ids: dict[str, str] = field(default_factory=dict)
    fills: list[Fill] = field(default_factory=list)
    non_trades: list[NonTrade] = field(default_factory=list)
    # The orders that were open when last looked at, in submission order: the checks that
    # need open orders (buying power, held shares) look at these, not at every order ever
    # placed. An order never reopens, so pruning the ended ones when read is exact.
    _open: dict[str, Order] = field(default_factory=dict)

    def add_order(self, order: Order) -> None:
        """Keep a newly accepted order."""
        self.orders[order.id] = order
        self.client_ids[order.client_order_id] = order.id
        self._open[order.id] = order

    def open_orders(self) -> list[Order]:
        """Non-terminal orders in submission order."""
        ended = [oid for oid, o in self._open.items() if not o.is_open]
        for oid in ended:
            del self._open[oid]
        return list(self._open.values())

    def reserved_for_buys(self) -> Decimal:
        """Buying power held back by open buy orders (a replace in flight holds the larger of
        the old and the new order's reservation, not both)."""
        total = ZERO
        for order in self.open_orders():
            old = self.replaced_by_pending(order)
            value = order.reserved_value()
            total += max(value - old.reserved_value(), ZERO) if old else value
        return total

    def buying_power(self) -> Decimal:
        """Cash account: cash minus what open buy orders hold back (never below 0)."""
        return max(self.cash - self.reserved_for_buys(), ZERO)

    def held_sell_orders(self, symbol: str, excluding: str | None = None) -> list[Order]:
        """Open sell orders on ``symbol`` (their remaining qty is held), minus ``excluding``."""
        return [
            o
            for o in self.open_orders()
            if o.side == "sell" and o.symbol == symbol and o.id != excluding
        ]

    def held_for_orders(self, symbol: str, excluding: str | None = None) -> Decimal:
        """Shares of ``symbol`` held by open sell orders other than ``excluding``. While a
        replace is in flight, the old and the new order together hold the larger of the old
        order's remaining qty and the new order's qty (Alpaca holds for one of them)."""
        total = ZERO
        for order in self.held_sell_orders(symbol, excluding):
            old = self.replaced_by_pending(order)
            if old is not None and old.id != excluding:
                total += max(order.remaining_qty - old.remaining_qty, ZERO)
            else:
                total += order.remaining_qty
        return total

    def replaced_by_pending(self, order: Order) -> Order | None:
        """For a replacement not yet live (``pending_new``), the open order it replaces."""
        if order.status != "pending_new" or order.replaces is None:
            return None
        old = self.orders.get(order.replaces)
        return old if old is not None and old.is_open else None

    def select_orders(
        self,
        *,
        status: str,
        after: datetime | None,
        until: datetime | None,
        symbols: list[str] | None,
        side: str | None,
    ) -> list[Order]:
        """Orders in submission order: ``status`` open/closed/all, submitted strictly
        between ``after`` and ``until``, of ``symbols`` and ``side`` when given."""
        wanted = set(symbols) if symbols else None
        return [
            o
            for o in self.orders.values()
            if (status == "all" or o.is_open == (status == "open"))
            and (after is None or o.submitted_at > after)
            and (until is None or o.submitted_at < until)
            and (wanted is None or o.symbol in wanted)
            and (side is None or o.side == side)
        ]

    def select_fills(
        self, *, after: datetime | None, until: datetime | None, direction: str
    ) -> list[Fill]:
        """Fills strictly between ``after`` and ``until``, oldest first unless ``desc``."""
        fills = [
            f
            for f in self.fills
            if (after is None or f.transaction_time > after)
            and (until is None or f.transaction_time < until)
        ]
        return fills[::-1] if direction == "desc" else fills

    def select_non_trades(
        self, *, types: set[str], after: datetime | None, until: datetime | None
    ) -> list[NonTrade]:
        """Non-trade activities of ``types`` booked strictly between ``after`` and ``until``."""
        return [
            n
            for n in self.non_trades
            if n.activity_type in types
            and (after is None or n.booked_at > after)
            and (until is None or n.booked_at < until)
        ]

    def record_fill(
        self, order: Order, qty: Decimal, price: Decimal, t: datetime, execution_id: str
    ) -> None:
        """Record one execution of ``order`` (already applied to it) as a FILL activity."""
        self.fills.append(
            Fill(
                id=f"{t.strftime('%Y%m%d%H%M%S')}{t.microsecond // 1000:03d}::{execution_id}",
                execution_id=execution_id,
                transaction_time=t,
                order_id=order.id,
                symbol=order.symbol,
                side=order.side,
                qty=qty,
                price=price,
                cum_qty=order.filled_qty,
                leaves_qty=order.remaining_qty,  # 0 once complete (and for notional orders)
                order_status=order.status,
            )
        )

    def position_qty(self, symbol: str) -> Decimal:
        """Shares held (0 when flat)."""
        held = self.positions.get(symbol)
        return held.qty if held else ZERO

    def apply_fill(self, order: Order, qty: Decimal, price: Decimal) -> Decimal:
        """Move cash and the position for one execution; returns the position qty after."""
        value = qty * price
        held = self.positions.get(order.symbol)
        if order.side == "buy":
            self.cash -= value
            if held is None:
                held = Position(symbol=order.symbol, asset_id=order.asset_id, qty=ZERO, cost=ZERO)
                self.positions[order.symbol] = held
            held.qty += qty
            held.cost += value
            return held.qty
        self.cash += value
        if held is None:  # guarded at submission: shorting is disabled
            raise RuntimeError(f"sell fill without a position in {order.symbol}")
        avg = held.avg_entry_price
        held.qty -= qty
        held.cost = held.qty * avg
        if held.qty <= 0:
            del self.positions[order.symbol]
            return ZERO
        return held.qty
