"""The exchange's order desk: submit, list, look up, replace and cancel orders (with the
pre-trade checks, and cancels and replaces that complete later, as Alpaca's do)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from magellan_core.clock import Clock
from magellan_sim.errors import (
    FORBIDDEN,
    INVALID_PARAM,
    UNPROCESSABLE,
    SimError,
    invalid,
    not_found,
)
from magellan_sim.exchange import pretrade, washtrade
from magellan_sim.exchange.account import Account
from magellan_sim.exchange.book import AccountBook, Ids
from magellan_sim.exchange.faults import Faults
from magellan_sim.exchange.lifecycle import OrderLifecycle
from magellan_sim.exchange.orders import Order
from magellan_sim.exchange.pending import CANCEL, REPLACE, Pending, cancel_refusal, replace_refusal
from magellan_sim.exchange.requests import OrderRequest, check_opg_window, validate
from magellan_sim.exchange.valuation import Valuation
from magellan_sim.exchange.wire import asset_id, dec, order_dict
from magellan_sim.market.calendar import SessionCalendar
from magellan_sim.market.market import MarketData

MAX_ORDER_LIST = 500


class OrderDesk:
    """Orders, as the REST API asks for them."""

    def __init__(
        self,
        clock: Clock,
        calendar: SessionCalendar,
        market: MarketData,
        *,
        advance: Callable[[], None],
        accounts: AccountBook,
        lifecycle: OrderLifecycle,
        valuation: Valuation,
        faults: Faults,
        ids: Ids,
        wash_trade_check: bool,
        cancel_latency: float,
        replace_latency: float,
    ) -> None:
        if cancel_latency < 0 or replace_latency < 0:
            raise ValueError("cancel and replace latencies must be >= 0 seconds")
        self._clock = clock
        self._calendar = calendar
        self._market = market
        self._advance = advance
        self._accounts = accounts
        self._lifecycle = lifecycle
        self._valuation = valuation
        self._faults = faults
        self._ids = ids
        self.wash_trade_check = wash_trade_check
        self._cancel_delay = timedelta(seconds=cancel_latency)
        self._replace_delay = timedelta(seconds=replace_latency)

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
        return self.submit_request(key, request, refusable=True)

    def submit_request(self, key: str, request: OrderRequest, *, refusable: bool) -> dict[str, Any]:
        """Accept ``request`` as ``submit_order`` does; ``refusable=False`` (a liquidation
        of ``close_position``) is exempt from the faults that refuse or end new orders."""
        self._advance()
        account = self._accounts.open(key)
        now = self._clock.now()
        self._check_request(account, request, now)
        if self.wash_trade_check:
            pretrade.check_wash_trade(account, request, excluding=None)
        reserved = pretrade.reserved_price(request, self._valuation.price(request.symbol, now))
        pretrade.check_affordable(account, request, reserved, replacing=None)
        if refusable:
            self._refuse_if_told(request)
        order = self._create(account, request, now, reserved, replaces=None)
        if self._faults.take("reject_next_orders"):
            accepted = order_dict(order)
            self._lifecycle.reject(order, now)
            return accepted
        self._lifecycle.activate_if_open(order, now)
        if not refusable:
            return order_dict(order)
        return self._answer_if_told(order, now)

    def _refuse_if_told(self, request: OrderRequest) -> None:
        """The faults that refuse an order that passed every check (nothing is created, the
        client_order_id stays free), as Alpaca refuses: for money, as a potential wash
        trade, for shares held elsewhere, or with a server error."""
        faults = self._faults
        self._server_error_if_told("error_next_orders")
        if faults.take("refuse_next_orders"):
            # for money by default; PDT protection, a symbol... when the test says so
            raise SimError(403, FORBIDDEN, faults.refuse_message)
        if faults.take("wash_trade_next_orders"):
            raise SimError(
                403,
                FORBIDDEN,
                washtrade.MESSAGE,
                reject_reason="opposite side order exists that could trade with this order",
            )
        if request.side == "sell" and faults.take("insufficient_qty_next_orders"):
            requested = dec(request.qty or Decimal(0))
            raise SimError(
                403,
                FORBIDDEN,
                f"insufficient qty available for order (requested: {requested}, available: 0)",
                available="0",
                symbol=request.symbol,
            )

    def _answer_if_told(self, order: Order, now: datetime) -> dict[str, Any]:
        """The faults that accept an order and then end it or lose the answer: the reply
        is the order as accepted (the stream tells the rest, as at Alpaca)."""
        faults = self._faults
        if faults.take("partial_next_orders"):
            self._lifecycle.fill_part_next(order.id)
        accepted = order_dict(order)
        if faults.take("cancel_next_orders"):
            self._lifecycle.cancel(order, now)
        elif faults.take("expire_next_orders"):
            self._lifecycle.expire(order, now)
        # the order exists and works: only the answer is lost
        self._server_error_if_told("error_after_next_orders")
        return accepted

    def _check_request(self, account: Account, request: OrderRequest, now: datetime) -> None:
        validate(request)
        if not self._market.has_symbol(request.symbol):
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
        client_order_id = request.client_order_id or self._ids.new()
        expires = None
        if request.time_in_force != "gtc":
            expires = self._calendar.next_session(now).close
        order = Order(
            id=self._ids.new(),
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
        account.add_order(order)
        if replaces is None:
            self._lifecycle.working[order.id] = order
        return order

    def _activate_if_open(self, order: Order, now: datetime) -> None:
        # OPG orders always wait for the open; others go live at once during the session.
        if order.time_in_force != "opg" and self._calendar.is_open(now):
            order.status = "new"
            order.active_from = now
            self._lifecycle.updates.emit(order, "new", now)

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
        self._advance()
        account = self._accounts.open(key)
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
        self._advance()
        return order_dict(self._find(self._accounts.open(key), order_id))

    def get_order_by_client_id(self, key: str, client_order_id: str) -> dict[str, Any]:
        """One order by client_order_id (404 when unknown)."""
        self._advance()
        account = self._accounts.open(key)
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
        self._advance()
        self._server_error_if_told("error_next_replaces")
        account = self._accounts.open(key)
        old = self._find(account, order_id)
        refusal = replace_refusal(old)
        if refusal is not None:
            raise SimError(422, UNPROCESSABLE, refusal)
        if old.notional is not None:
            raise SimError(422, UNPROCESSABLE, "notional orders cannot be replaced")
        now = self._clock.now()
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
        reserved = pretrade.reserved_price(request, self._valuation.price(request.symbol, now))
        pretrade.check_affordable(account, request, reserved, replacing=old)
        new = self._create(account, request, now, reserved, replaces=old.id)
        action = Pending(
            kind=REPLACE,
            account_key=key,
            order_id=old.id,
            new_order_id=new.id,
            due=now + self._replace_delay,
            previous_status=old.status,
            refused=self._faults.take("refuse_next_replaces"),
        )
        if self._faults.take("hold_next_replaces"):
            action.due = now + timedelta(seconds=self._faults.hold_seconds)
        if action.due <= now:
            self._lifecycle.complete(action, now)
        else:
            new.status = "pending_new"
            old.status = "pending_replace"
            old.updated_at = now
            self._lifecycle.updates.emit(old, "pending_replace", now)
            self._lifecycle.schedule(action)
        self._server_error_if_told("error_after_next_replaces")
        return order_dict(new)

    def cancel_order(self, key: str, order_id: str) -> None:
        """Request the cancel of an open order: it goes ``pending_cancel`` and is canceled
        after the cancel latency, unless it fills first. 422 when it is terminal or already
        has a cancel or replace in flight."""
        self._advance()
        self._server_error_if_told("error_next_cancels")
        order = self._find(self._accounts.open(key), order_id)
        refusal = cancel_refusal(order)
        if refusal is not None:
            raise SimError(422, UNPROCESSABLE, refusal)
        refused = self._faults.take("refuse_next_cancels")
        held = self._faults.take("hold_next_cancels")
        self._request_cancel(order, refused, held)
        self._server_error_if_told("error_after_next_cancels")

    def _server_error_if_told(self, fault: str) -> None:
        """The answer lost to a server error (the ``error_*`` faults): before the request
        did anything, or after it did its work."""
        if self._faults.take(fault):
            where = "after processing" if "after" in fault else "before processing"
            raise SimError(self._faults.http_status, None, f"injected fault: server error {where}")

    def _request_cancel(self, order: Order, refused: bool, held: bool = False) -> None:
        now = self._clock.now()
        delay = timedelta(seconds=self._faults.hold_seconds) if held else self._cancel_delay
        action = Pending(
            kind=CANCEL,
            account_key=order.account_key,
            order_id=order.id,
            due=now + delay,
            previous_status=order.status,
            refused=refused,
        )
        if not delay:
            self._lifecycle.complete(action, now)
            return
        order.status = "pending_cancel"
        order.updated_at = now
        self._lifecycle.updates.emit(order, "pending_cancel", now)
        self._lifecycle.schedule(action)

    def cancel_all_orders(self, key: str) -> list[dict[str, Any]]:
        """Request the cancel of every open order: 207 items ``{"id","status","body"}``,
        200 with the order (now ``pending_cancel``) or 422 when one is already in flight."""
        self._advance()
        out: list[dict[str, Any]] = []
        for order in self._accounts.open(key).open_orders():
            refusal = cancel_refusal(order)
            if refusal is not None:
                body = SimError(422, UNPROCESSABLE, refusal).body()
                out.append({"id": order.id, "status": 422, "body": body})
                continue
            self._request_cancel(order, refused=False)
            out.append({"id": order.id, "status": 200, "body": order_dict(order)})
        return out
