"""The exchange core: accounts, orders, positions, matching against bars, trade updates.

Plain synchronous code driven by a ``Clock``: every public method first calls ``advance()``,
which processes, in time order, everything that became due since the last call (session
opens, bar completions of symbols with working orders, session closes).
"""

from __future__ import annotations

import hashlib
import logging
import random
import uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_DOWN, Decimal
from typing import Any

from magellan_daemon.clock import Clock
from magellan_daemon.sim import data_api, pretrade
from magellan_daemon.sim.account import Account
from magellan_daemon.sim.calendar import SessionCalendar, calendar_days
from magellan_daemon.sim.errors import (
    FORBIDDEN,
    INVALID_PARAM,
    UNPROCESSABLE,
    SimError,
    invalid,
    not_found,
)
from magellan_daemon.sim.faults import Faults
from magellan_daemon.sim.market import MarketData, SimBar
from magellan_daemon.sim.orders import ZERO, Order, match_price, opening_price, price_decimal
from magellan_daemon.sim.pending import (
    CANCEL,
    REPLACE,
    Pending,
    PendingBook,
    cancel_refusal,
    replace_refusal,
)
from magellan_daemon.sim.requests import OrderRequest, check_opg_window, validate
from magellan_daemon.sim.tape import Tape
from magellan_daemon.sim.wire import (
    account_dict,
    activity_dict,
    asset_dict,
    asset_id,
    dec,
    order_dict,
    position_dict,
    stream_bar_dict,
    ts,
    ts_new_york,
)

log = logging.getLogger(__name__)

Listener = Callable[[str, dict[str, Any]], None]
ACCOUNT_NAMESPACE = uuid.UUID("0b7e3c52-2f5d-4a8e-bb0c-7a4f1d6e9c30")
NOTIONAL_QTY_STEP = Decimal("0.000000001")
MAX_ORDER_LIST = 500
MAX_ACTIVITY_PAGE = 100


class Exchange:
    """A paper broker: one account per API key, orders matched against the market's bars."""

    def __init__(
        self,
        clock: Clock,
        market: MarketData,
        calendar: SessionCalendar,
        *,
        cash: Decimal = Decimal(100000),
        slippage_bps: float = 0.0,
        faults: Faults | None = None,
        seed: int = 0,
        wash_trade_check: bool = True,
        cancel_latency: float = 2.0,
        replace_latency: float = 2.0,
    ) -> None:
        self.clock = clock
        self.market = market
        self.calendar = calendar
        self.faults = faults or Faults()
        self.faults.use_clock(clock.now)
        self.slippage_bps = slippage_bps
        self.wash_trade_check = wash_trade_check
        if cancel_latency < 0 or replace_latency < 0:
            raise ValueError("cancel and replace latencies must be >= 0 seconds")
        self._cancel_delay = timedelta(seconds=cancel_latency)
        self._replace_delay = timedelta(seconds=replace_latency)
        self._pending = PendingBook()
        self._schedule_listeners: list[Callable[[], None]] = []
        self._initial_cash = Decimal(cash)
        self._rng = random.Random(seed)
        self._accounts: dict[str, Account] = {}
        self._working: dict[str, Order] = {}
        self._listeners: list[Listener] = []
        self._processed = clock.now()
        self._symbol_by_asset_id = {asset_id(s): s for s in market.symbols()}
        self.tape = Tape(market, calendar)

    def add_listener(self, callback: Listener) -> None:
        """Call ``callback(account_key, message)`` for every trade_updates message."""
        self._listeners.append(callback)

    def add_schedule_listener(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` whenever a cancel or replace is put in flight (``next_due``
        may then be earlier than it was): the server's publisher re-plans its wake-up."""
        self._schedule_listeners.append(callback)

    def next_due(self) -> datetime | None:
        """When the earliest cancel or replace in flight completes (None if none is): an
        instant ``advance()`` must reach even when no request arrives."""
        return self._pending.next_due()

    # -- time --------------------------------------------------------------------------------

    def advance(self) -> None:
        """Process everything due up to ``clock.now()`` in time order (idempotent)."""
        now = self.clock.now()
        while (due := self._next_event(now)) is not None:
            self._process(due)
            self._processed = due
        self._processed = max(self._processed, now)

    def _next_event(self, now: datetime) -> datetime | None:
        after = self._processed
        candidates: list[datetime] = []
        for upcoming in (self.calendar.next_open, self.calendar.next_close):
            try:
                candidates.append(upcoming(after))
            except ValueError:
                continue  # beyond the calendar's range
        for symbol in {o.symbol for o in self._working.values()}:
            done = self.tape.next_completion(symbol, after)
            if done is not None:
                candidates.append(done)
        pending = self._pending.next_due()
        if pending is not None:
            candidates.append(max(pending, after))
        due = min(candidates, default=None)
        return due if due is not None and due <= now else None

    def _process(self, t: datetime) -> None:
        session = self.calendar.session_at(t)
        if session is not None and session.open == t:
            self._open_session(t)
        for symbol in sorted({o.symbol for o in self._working.values()}):
            self._match_symbol(symbol, t)
        # After the bars completing at t (a fill at the same instant wins the race), before
        # the close (a cancel due at the close cancels rather than expires).
        for action in self._pending.take_due(t):
            self._complete(action, t)
        if self.calendar.previous_close(t) == t:
            self._close_session(t)

    def _open_session(self, t: datetime) -> None:
        for order in list(self._working.values()):
            if order.active_from is None:
                order.active_from = t
                action = self._pending.get(order.id)
                if action is not None:
                    # its cancel is still in flight: it works from now on, stays
                    # pending_cancel, and a refused cancel leaves it new
                    action.previous_status = "new"
                    continue
                order.status = "new"
                order.updated_at = t
                self._emit(order, "new", t)

    def _close_session(self, t: datetime) -> None:
        for order in list(self._working.values()):
            if order.expires_at is not None and order.expires_at <= t:
                order.status = "expired"
                order.expired_at = order.updated_at = t
                self._working.pop(order.id)
                self._emit(order, "expired", t)
                self._ended(order, t)
        for account in self._accounts.values():
            account.last_equity = account.cash + self._long_market_value(account, t)

    def _match_symbol(self, symbol: str, t: datetime) -> None:
        bar = self.tape.bar_completing_at(symbol, t)
        if bar is None or not self.calendar.is_open(bar.t):
            return  # orders only fill against regular-session minutes
        for order in [o for o in self._working.values() if o.symbol == symbol]:
            if order.active_from is not None and bar.t >= order.active_from:
                self._match(order, bar, t)

    def _match(self, order: Order, bar: SimBar, t: datetime) -> None:
        if order.time_in_force == "opg":
            price = opening_price(order, bar)
        else:
            price = match_price(order, bar, self.slippage_bps)
        if price is not None:
            self._fill(order, price, t)
        if order.time_in_force in ("opg", "ioc") and order.is_open:
            self._cancel(order, t)

    def _fill(self, order: Order, raw_price: float, t: datetime) -> None:
        price = price_decimal(raw_price)
        if order.notional is not None:
            qty = (order.notional / price).quantize(NOTIONAL_QTY_STEP, rounding=ROUND_DOWN)
        else:
            qty = self._fill_qty(order.remaining_qty)
        account = self._accounts[order.account_key]
        position_qty = account.apply_fill(order, qty, price)
        order.filled_qty += qty
        order.filled_value += qty * price
        complete = order.notional is not None or order.remaining_qty == 0
        action = self._pending.get(order.id)
        if complete:
            order.status = "filled"
        elif action is not None and action.kind == CANCEL:
            # the cancel of the rest still completes; refused, the order returns to this
            action.previous_status = "partially_filled"
        else:
            order.status = "partially_filled"
        order.updated_at = t
        if complete:
            order.filled_at = t
            self._working.pop(order.id, None)
        execution_id = self._uuid()
        account.record_fill(order, qty, price, t, execution_id)
        self._emit(
            order,
            "fill" if complete else "partial_fill",
            t,
            execution_id=execution_id,
            price=dec(price),
            qty=dec(qty),
            position_qty=dec(position_qty),
        )
        if complete:
            self._ended(order, t)
        elif action is not None and action.kind == REPLACE:
            # Stricter reading: a partial fill during a replace refuses it like a full fill
            # (the new order's qty was asked for against a remainder that no longer holds).
            self._refuse_replace(self._pending.pop(order.id) or action, order, t)

    def _fill_qty(self, remaining: Decimal) -> Decimal:
        ratio = self.faults.partial_fill_ratio
        if ratio <= 0:
            return remaining
        part = (remaining * Decimal(repr(ratio))).to_integral_value(rounding=ROUND_CEILING)
        return min(remaining, max(Decimal(1), part))

    def _cancel(self, order: Order, t: datetime) -> None:
        order.status = "canceled"
        order.canceled_at = order.updated_at = t
        self._working.pop(order.id, None)
        self._emit(order, "canceled", t)
        self._ended(order, t)

    def _reject(self, order: Order, t: datetime) -> None:
        order.status = "rejected"
        order.failed_at = order.updated_at = t
        self._working.pop(order.id, None)
        self._emit(order, "rejected", t)

    # -- cancels and replaces in flight ------------------------------------------------------

    def _schedule(self, action: Pending) -> None:
        self._pending.add(action)
        for callback in list(self._schedule_listeners):
            callback()

    def _complete(self, action: Pending, t: datetime) -> None:
        """The venue's answer to a cancel or replace whose latency has elapsed."""
        account = self._accounts[action.account_key]
        order = account.orders[action.order_id]
        if action.kind == CANCEL:
            if action.refused:
                order.status = action.previous_status
                order.updated_at = t
                self._emit(order, "order_cancel_rejected", t)
            else:
                self._cancel(order, t)
            return
        if action.refused:
            self._refuse_replace(action, order, t)
            return
        new = account.orders[action.new_order_id or ""]
        order.status = "replaced"
        order.replaced_at = order.updated_at = t
        order.replaced_by = new.id
        self._working.pop(order.id, None)
        self._emit(order, "replaced", t)
        self._go_live(new, t)

    def _refuse_replace(self, action: Pending, old: Order, t: datetime) -> None:
        """The replace failed: the old order stays as it is (or returns to its status before
        the replace), and the new one is rejected."""
        if old.status == "pending_replace":
            old.status = action.previous_status
            old.updated_at = t
        self._emit(old, "order_replace_rejected", t)
        self._reject(self._accounts[action.account_key].orders[action.new_order_id or ""], t)

    def _ended(self, order: Order, t: datetime) -> None:
        """``order`` reached a terminal status: settle a cancel or replace still in flight."""
        action = self._pending.pop(order.id)
        if action is None:
            return
        if action.kind == REPLACE:
            self._refuse_replace(action, order, t)
        elif order.status == "filled":
            self._emit(order, "order_cancel_rejected", t)  # the fill won the race
        # canceled or expired meanwhile: what the cancel asked for happened anyway

    def _emit(self, order: Order, event: str, t: datetime, **fill: str | None) -> None:
        message = {
            "stream": "trade_updates",
            "data": {"event": event, "timestamp": ts(t), "order": order_dict(order), **fill},
        }
        for callback in list(self._listeners):
            try:
                callback(order.account_key, message)
            except Exception:
                log.exception("trade_updates listener failed on %s %s", event, order.id)

    # -- accounts ----------------------------------------------------------------------------

    def _account(self, key: str) -> Account:
        account = self._accounts.get(key)
        if account is None:
            digest = int(hashlib.sha256(key.encode()).hexdigest(), 16)
            account = Account(
                key=key,
                id=str(uuid.uuid5(ACCOUNT_NAMESPACE, key)),
                account_number=f"PA{digest % 10**10:010d}",
                created_at=self.clock.now(),
                cash=self._initial_cash,
                last_equity=self._initial_cash,
            )
            self._accounts[key] = account
        return account

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _price(self, symbol: str, now: datetime) -> Decimal | None:
        last = self.tape.last_price(symbol, now)
        return None if last is None else Decimal(repr(last))

    def _long_market_value(self, account: Account, now: datetime) -> Decimal:
        total = ZERO
        for position in account.positions.values():
            price = self._price(position.symbol, now) or position.avg_entry_price
            total += position.qty * price
        return total

    def get_account(self, key: str) -> dict[str, Any]:
        """The account, valued at the latest completed bars."""
        self.advance()
        account = self._account(key)
        return account_dict(account, self._long_market_value(account, self.clock.now()))

    def get_clock(self) -> dict[str, Any]:
        """Market clock in New York time."""
        self.advance()
        now = self.clock.now()
        return {
            "timestamp": ts_new_york(now),
            "is_open": self.calendar.is_open(now),
            "next_open": ts_new_york(self.calendar.next_open(now)),
            "next_close": ts_new_york(self.calendar.next_close(now)),
        }

    def get_calendar(self, start: date | None, end: date | None) -> list[dict[str, Any]]:
        """Sessions from ``start`` to ``end`` inclusive (whole calendar by default)."""
        self.advance()
        first = start or self.calendar.first_date
        last = end or self.calendar.last_date
        if last < first:
            raise invalid("end must not be before start")
        return calendar_days(self.calendar, first, last)

    def _symbol(self, symbol_or_id: str) -> str | None:
        if self.market.has_symbol(symbol_or_id):
            return symbol_or_id
        return self._symbol_by_asset_id.get(symbol_or_id.lower())

    def get_asset(self, key: str, symbol_or_id: str) -> dict[str, Any]:
        """The asset for a symbol or asset id (404 if the market does not have it)."""
        self.advance()
        self._account(key)
        symbol = self._symbol(symbol_or_id)
        if symbol is None:
            raise not_found(f"asset not found for {symbol_or_id}")
        return asset_dict(symbol)

    # -- orders ------------------------------------------------------------------------------

    def submit_order(
        self,
        key: str,
        *,
        symbol: str,
        qty: Decimal | None,
        notional: Decimal | None,
        side: str,
        type: str,
        time_in_force: str,
        limit_price: Decimal | None,
        stop_price: Decimal | None,
        client_order_id: str | None,
        extended_hours: bool,
    ) -> dict[str, Any]:
        """Accept a new order and return it: 422 for bad parameters, 403 for buying power,
        held shares, a wash trade or the ``refuse_next_orders`` fault."""
        request = OrderRequest(
            symbol=symbol,
            qty=qty,
            notional=notional,
            side=side,
            type=type,
            time_in_force=time_in_force,
            limit_price=limit_price,
            stop_price=stop_price,
            client_order_id=client_order_id,
            extended_hours=extended_hours,
        )
        return self._submit(key, request, refusable=True)

    def _submit(self, key: str, request: OrderRequest, *, refusable: bool) -> dict[str, Any]:
        self.advance()
        account = self._account(key)
        now = self.clock.now()
        self._check_request(account, request, now)
        if self.wash_trade_check:
            pretrade.check_wash_trade(account, request, excluding=None)
        reserved = pretrade.reserved_price(request, self._price(request.symbol, now))
        pretrade.check_affordable(account, request, reserved, replacing=None)
        if refusable and self.faults.take("refuse_next_orders"):
            # an order that passed every check, refused as Alpaca refuses for money
            raise SimError(403, FORBIDDEN, "insufficient buying power")
        order = self._create(account, request, now, reserved, replaces=None)
        if self.faults.take("reject_next_orders"):
            accepted = order_dict(order)
            self._reject(order, now)
            return accepted
        self._activate_if_open(order, now)
        return order_dict(order)

    def _check_request(self, account: Account, request: OrderRequest, now: datetime) -> None:
        validate(request)
        if not self.market.has_symbol(request.symbol):
            raise invalid("invalid symbol")
        if request.time_in_force == "opg":
            check_opg_window(now)
        if request.client_order_id in account.client_ids:
            raise SimError(422, INVALID_PARAM, "client_order_id must be unique")

    def _create(
        self,
        account: Account,
        request: OrderRequest,
        now: datetime,
        reserved: Decimal,
        replaces: str | None,
    ) -> Order:
        """A new order, registered with the account (and working unless it replaces one:
        a replacement starts working when its replace completes)."""
        client_order_id = request.client_order_id or self._uuid()
        expires = None
        if request.time_in_force != "gtc":
            expires = self.calendar.next_session(now).close
        order = Order(
            id=self._uuid(),
            client_order_id=client_order_id,
            account_key=account.key,
            symbol=request.symbol,
            asset_id=asset_id(request.symbol),
            side=request.side,
            type=request.type,
            time_in_force=request.time_in_force,
            qty=request.qty,
            notional=request.notional,
            limit_price=request.limit_price,
            stop_price=request.stop_price,
            extended_hours=request.extended_hours,
            status="accepted",
            created_at=now,
            updated_at=now,
            submitted_at=now,
            active_from=None,
            expires_at=expires,
            reserved_price=reserved,
            replaces=replaces,
        )
        account.orders[order.id] = order
        account.client_ids[client_order_id] = order.id
        if replaces is None:
            self._working[order.id] = order
        return order

    def _activate_if_open(self, order: Order, now: datetime) -> None:
        # OPG orders always wait for the open; others go live at once during the session.
        if order.time_in_force != "opg" and self.calendar.is_open(now):
            order.status = "new"
            order.active_from = now
            self._emit(order, "new", now)

    def _go_live(self, order: Order, t: datetime) -> None:
        """A replacement whose replace completed: working from now, ``new`` while the
        market is open, else ``accepted`` until the next open."""
        order.status = "accepted"
        order.updated_at = t
        self._working[order.id] = order
        self._activate_if_open(order, t)

    def _find(self, account: Account, order_id: str) -> Order:
        order = account.orders.get(order_id)
        if order is None:
            raise not_found(f"order not found for {order_id}")
        return order

    def list_orders(
        self,
        key: str,
        *,
        status: str = "open",
        after: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        direction: str = "desc",
        nested: bool = False,
        symbols: list[str] | None = None,
        side: str | None = None,
    ) -> list[dict[str, Any]]:
        """Orders filtered like Alpaca (``after``/``until`` exclusive on submission time)."""
        self.advance()
        account = self._account(key)
        if status not in ("open", "closed", "all"):
            raise invalid("status must be open, closed or all")
        if direction not in ("asc", "desc"):
            raise invalid("direction must be asc or desc")
        if not 1 <= limit <= MAX_ORDER_LIST:
            raise invalid(f"limit must be between 1 and {MAX_ORDER_LIST}")
        if side is not None and side not in ("buy", "sell"):
            raise invalid("side must be buy or sell")
        chosen = account.select_orders(
            status=status, after=after, until=until, symbols=symbols, side=side
        )
        if direction == "desc":
            chosen.reverse()  # orders dict keeps submission order
        return [order_dict(o) for o in chosen[:limit]]

    def get_order(self, key: str, order_id: str) -> dict[str, Any]:
        """One order by id (404 when unknown)."""
        self.advance()
        return order_dict(self._find(self._account(key), order_id))

    def get_order_by_client_id(self, key: str, client_order_id: str) -> dict[str, Any]:
        """One order by client_order_id (404 when unknown)."""
        self.advance()
        account = self._account(key)
        order_id = account.client_ids.get(client_order_id)
        if order_id is None:
            raise not_found(f"order not found for {client_order_id}")
        return order_dict(account.orders[order_id])

    def replace_order(
        self,
        key: str,
        order_id: str,
        *,
        qty: Decimal | None,
        limit_price: Decimal | None,
        stop_price: Decimal | None,
        time_in_force: str | None,
        client_order_id: str | None,
    ) -> dict[str, Any]:
        """Replace an open order by a new one (the answer); the old one goes
        ``pending_replace`` and becomes ``replaced`` after the replace latency, unless it
        fills first. 422 when the order is not live or has something in flight, 403 for
        unchanged parameters, buying power, held shares or a wash trade."""
        self.advance()
        account = self._account(key)
        old = self._find(account, order_id)
        refusal = replace_refusal(old)
        if refusal is not None:
            raise SimError(422, UNPROCESSABLE, refusal)
        if old.notional is not None:
            raise SimError(422, UNPROCESSABLE, "notional orders cannot be replaced")
        now = self.clock.now()
        request = OrderRequest(
            symbol=old.symbol,
            qty=qty if qty is not None else old.remaining_qty,
            notional=None,
            side=old.side,
            type=old.type,
            time_in_force=time_in_force or old.time_in_force,
            limit_price=limit_price if limit_price is not None else old.limit_price,
            stop_price=stop_price if stop_price is not None else old.stop_price,
            client_order_id=client_order_id,
            extended_hours=old.extended_hours,
        )
        unchanged = (request.qty, request.limit_price, request.stop_price) == (
            old.remaining_qty,
            old.limit_price,
            old.stop_price,
        ) and request.time_in_force == old.time_in_force
        if unchanged and client_order_id is None:
            raise SimError(403, FORBIDDEN, "order parameters are not changed")
        self._check_request(account, request, now)
        if self.wash_trade_check:
            pretrade.check_wash_trade(account, request, excluding=old.id)
        reserved = pretrade.reserved_price(request, self._price(request.symbol, now))
        pretrade.check_affordable(account, request, reserved, replacing=old)
        new = self._create(account, request, now, reserved, replaces=old.id)
        action = Pending(
            kind=REPLACE,
            account_key=key,
            order_id=old.id,
            new_order_id=new.id,
            due=now + self._replace_delay,
            previous_status=old.status,
            refused=self.faults.take("refuse_next_replaces"),
        )
        if not self._replace_delay:
            self._complete(action, now)
            return order_dict(new)
        new.status = "pending_new"
        old.status = "pending_replace"
        old.updated_at = now
        self._emit(old, "pending_replace", now)
        self._schedule(action)
        return order_dict(new)

    def cancel_order(self, key: str, order_id: str) -> None:
        """Request the cancel of an open order: it goes ``pending_cancel`` and is canceled
        after the cancel latency, unless it fills first. 422 when it is terminal or already
        has a cancel or replace in flight."""
        self.advance()
        order = self._find(self._account(key), order_id)
        refusal = cancel_refusal(order)
        if refusal is not None:
            raise SimError(422, UNPROCESSABLE, refusal)
        self._request_cancel(order, self.faults.take("refuse_next_cancels"))

    def _request_cancel(self, order: Order, refused: bool) -> None:
        now = self.clock.now()
        action = Pending(
            kind=CANCEL,
            account_key=order.account_key,
            order_id=order.id,
            due=now + self._cancel_delay,
            previous_status=order.status,
            refused=refused,
        )
        if not self._cancel_delay:
            self._complete(action, now)
            return
        order.status = "pending_cancel"
        order.updated_at = now
        self._emit(order, "pending_cancel", now)
        self._schedule(action)

    def cancel_all_orders(self, key: str) -> list[dict[str, Any]]:
        """Request the cancel of every open order: 207 items ``{"id","status","body"}``,
        200 with the order (now ``pending_cancel``) or 422 when one is already in flight."""
        self.advance()
        out: list[dict[str, Any]] = []
        for order in self._account(key).open_orders():
            refusal = cancel_refusal(order)
            if refusal is not None:
                body = SimError(422, UNPROCESSABLE, refusal).body()
                out.append({"id": order.id, "status": 422, "body": body})
                continue
            self._request_cancel(order, refused=False)
            out.append({"id": order.id, "status": 200, "body": order_dict(order)})
        return out

    # -- positions ---------------------------------------------------------------------------

    def _position_view(self, account: Account, symbol: str, now: datetime) -> dict[str, Any]:
        position = account.positions[symbol]
        price = self._price(symbol, now) or position.avg_entry_price
        previous_close = self.calendar.previous_close(self.calendar.next_session(now).open)
        lastday = (self._price(symbol, previous_close) if previous_close else None) or price
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
        """FILL activities (the only kind simulated), paged by the last id seen."""
        self.advance()
        account = self._account(key)
        if direction not in ("asc", "desc"):
            raise invalid("direction must be asc or desc")
        if not 1 <= page_size <= MAX_ACTIVITY_PAGE:
            raise invalid(f"page_size must be between 1 and {MAX_ACTIVITY_PAGE}")
        if activity_types and "FILL" not in activity_types:
            return []
        fills = account.select_fills(after=after, until=until, direction=direction)
        if page_token is not None:
            ids = [f.id for f in fills]
            if page_token not in ids:
                raise invalid("invalid page_token")
            fills = fills[ids.index(page_token) + 1 :]
        return [activity_dict(f) for f in fills[:page_size]]

    # -- market data -------------------------------------------------------------------------

    def get_bars(
        self,
        *,
        symbols: list[str],
        timeframe: str,
        start: datetime | None,
        end: datetime | None,
        limit: int = 1000,
        page_token: str | None = None,
        sort: str = "asc",
    ) -> dict[str, Any]:
        """Historical bars (completed only), ``{"bars": {...}, "next_page_token": ...}``."""
        self.advance()
        return data_api.get_bars(
            self.market,
            self.clock.now(),
            symbols=symbols,
            timeframe=timeframe,
            start=start,
            end=end,
            limit=limit,
            page_token=page_token,
            sort=sort,
        )

    def latest_bars(self, symbols: list[str]) -> dict[str, Any]:
        """``{"bars": {sym: bar}}`` of the latest completed bars."""
        self.advance()
        return data_api.latest_bars(self.market.latest_bar, self.clock.now(), symbols)

    def latest_trades(self, symbols: list[str]) -> dict[str, Any]:
        """``{"trades": {sym: trade}}`` from the latest completed minutes of the tape."""
        self.advance()
        return data_api.latest_trades(self.tape.latest_bar, self.clock.now(), symbols)

    def latest_quotes(self, symbols: list[str]) -> dict[str, Any]:
        """``{"quotes": {sym: quote}}`` around the latest completed minutes of the tape."""
        self.advance()
        return data_api.latest_quotes(self.tape.latest_bar, self.clock.now(), symbols)

    def stream_bar(self, bar: SimBar) -> dict[str, Any]:
        """The data-stream map of a minute bar (``t`` left as a datetime)."""
        return stream_bar_dict(bar)


def _terminal(order: Order) -> SimError:
    return SimError(422, UNPROCESSABLE, f'order is already in "{order.status}" state')
