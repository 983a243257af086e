"""The exchange's corporate-actions desk: splits and dividends applied to the accounts at
00:00 New York of their ex-date (see ``market.corporate``), the served bars adjusted for
them, and the page of the corporate-actions endpoint.

A split, for each account: first every open order of the symbol is canceled (a ``canceled``
trade update; Alpaca's own handling of resting orders is not certain, so the stricter
reading), then the holding is re-based and the activities ``SPLIT`` and, for a fraction,
``CIL`` are recorded. A dividend credits the shares held and records ``DIV``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import uuid
from collections.abc import Callable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from magellan_core.corporate_actions import CorporateAction
from magellan_sim.errors import data_error
from magellan_sim.exchange.account import Account, NonTrade
from magellan_sim.exchange.book import AccountBook, Ids
from magellan_sim.exchange.lifecycle import OrderLifecycle
from magellan_sim.exchange.valuation import Valuation
from magellan_sim.exchange.wire import dec
from magellan_sim.market.calendar import new_york_date, new_york_midnight
from magellan_sim.market.corporate import CorporateBook, dividend_amount, split_holding
from magellan_sim.market.market import SimBar

ACTION_NAMESPACE = uuid.UUID("8f2d6c1a-3b4e-4f5a-9c7d-2e1b0a9f8d7c")
# Every type alpaca-py's CorporateActionsType knows: the file only holds three of them.
KNOWN_TYPES = frozenset(
    {
        "forward_split",
        "reverse_split",
        "unit_split",
        "cash_dividend",
        "stock_dividend",
        "spin_off",
        "cash_merger",
        "stock_merger",
        "stock_and_cash_merger",
        "redemption",
        "name_change",
        "worthless_removal",
        "rights_distribution",
    }
)
CORPORATE_LIMIT_MAX = 1000
CORPORATE_LIMIT_DEFAULT = 100


class CorporateDesk:
    """Corporate actions applied to the accounts, and the served bars adjusted for them."""

    def __init__(
        self,
        corporate: CorporateBook,
        *,
        accounts: AccountBook,
        lifecycle: OrderLifecycle,
        valuation: Valuation,
        ids: Ids,
    ) -> None:
        self._corporate = corporate
        self._accounts = accounts
        self._lifecycle = lifecycle
        self._valuation = valuation
        self._ids = ids

    # -- applying them -------------------------------------------------------------------

    def apply(self, action: CorporateAction, t: datetime) -> None:
        """Apply a split or dividend to every account, at ``t`` (the core calls it)."""
        for account in self._accounts.by_key():
            if action.is_split:
                self._split(account, action, t)
            else:
                self._pay_dividend(account, action, t)

    def _split(self, account: Account, action: CorporateAction, t: datetime) -> None:
        for order in account.open_orders():
            if order.symbol == action.symbol and order.id in self._lifecycle.working:
                # a replacement not yet live is settled with its old order (rejected)
                self._lifecycle.cancel(order, t)
        position = account.positions.get(action.symbol)
        if position is None:
            return
        ratio = action.ratio
        close = (
            self._valuation.previous_close(action.symbol, t, action.ex_date)
            or position.avg_entry_price / ratio
        )
        before = position.qty
        outcome = split_holding(
            position.qty, position.cost, action.new_rate, action.old_rate, close
        )
        if outcome.qty > 0:
            position.qty, position.cost = outcome.qty, outcome.cost
        else:
            del account.positions[action.symbol]
        account.cash += outcome.cash_in_lieu
        scale = f"{dec(action.new_rate)}:{dec(action.old_rate)}"
        self._book(
            account,
            action,
            t,
            "SPLIT",
            qty=outcome.qty - before,
            net_amount=Decimal(0),
            price=position.avg_entry_price if outcome.qty > 0 else None,
            description=f"{action.type} {scale}: {dec(before)} shares became {dec(outcome.qty)}",
        )
        if outcome.fraction:
            self._book(
                account,
                action,
                t,
                "CIL",
                qty=outcome.fraction,
                net_amount=outcome.cash_in_lieu,
                price=close,
                description=f"cash in lieu of {dec(outcome.fraction)} shares at {dec(close)}",
            )

    def _pay_dividend(self, account: Account, action: CorporateAction, t: datetime) -> None:
        qty = account.position_qty(action.symbol)
        if qty <= 0:
            return
        amount = dividend_amount(qty, action.rate)
        account.cash += amount
        self._book(
            account,
            action,
            t,
            "DIV",
            qty=qty,
            net_amount=amount,
            price=None,
            description=f"cash dividend {dec(action.rate)} per share on {dec(qty)} shares",
            per_share_amount=action.rate,
        )

    def _book(
        self,
        account: Account,
        action: CorporateAction,
        t: datetime,
        kind: str,
        *,
        qty: Decimal,
        net_amount: Decimal,
        price: Decimal | None,
        description: str,
        per_share_amount: Decimal | None = None,
    ) -> None:
        stamp = f"{t.strftime('%Y%m%d%H%M%S')}{t.microsecond // 1000:03d}"
        account.non_trades.append(
            NonTrade(
                id=f"{stamp}::{self._ids.new()}",
                activity_type=kind,
                booked_at=t,
                day=action.ex_date,
                symbol=action.symbol,
                qty=qty,
                net_amount=net_amount,
                price=price,
                per_share_amount=per_share_amount,
                description=description,
            )
        )

    def bar_adjustment(self, adjustment: str, now: datetime) -> Callable[[SimBar], SimBar] | None:
        """The function adjusting served bars (None for raw), as known at ``now``."""
        as_of = new_york_date(now)
        return self._corporate.bar_adjuster(adjustment, as_of, self._dividend_base_close)

    def _dividend_base_close(self, action: CorporateAction) -> Decimal | None:
        """The previous regular close before the action's ex-date, on the ex-date's scale
        (what Alpaca's dividend adjustment divides the dividend by)."""
        midnight = new_york_midnight(action.ex_date)
        return self._valuation.previous_close(action.symbol, midnight, action.ex_date)


# -- serving them --------------------------------------------------------------------------


def corporate_actions_page(
    actions: Sequence[CorporateAction],
    today: date,
    *,
    symbols: list[str] | None,
    types: list[str] | None,
    start: date | None,
    end: date | None,
    ids: list[str] | None,
    limit: int,
    sort: str,
    page_token: str | None,
) -> dict[str, Any]:
    """``GET /v1/corporate-actions``: the file's actions by ex-date (which is also
    their process date), ``start``..``end`` inclusive, both ``today`` by default."""
    if ids and (symbols or types or start or end):
        raise data_error("ids cannot be combined with other filters", status=400)
    unknown = sorted(set(types or ()) - KNOWN_TYPES)
    if unknown:
        raise data_error(f"invalid types: {', '.join(unknown)}", status=400)
    if not 1 <= limit <= CORPORATE_LIMIT_MAX:
        raise data_error(f"invalid limit: must be between 1 and {CORPORATE_LIMIT_MAX}")
    first, last = start or today, end or today
    if not ids and last < first:
        raise data_error("end should not be before start", status=400)
    wanted_ids = set(ids or ())
    chosen = [
        a
        for a in actions
        if (
            _action_id(a) in wanted_ids
            if ids
            else (
                first <= a.ex_date <= last
                and (not symbols or a.symbol in symbols)
                and (not types or a.type in types)
            )
        )
    ]
    if sort == "desc":
        chosen.reverse()
    offset = _decode_offset(page_token) if page_token else 0
    page = chosen[offset : offset + limit]
    more = offset + limit < len(chosen)
    grouped: dict[str, list[dict[str, Any]]] = {}
    for action in page:
        grouped.setdefault(f"{action.type}s", []).append(_action_dict(action))
    return {
        "corporate_actions": grouped,
        "next_page_token": _encode_offset(offset + limit) if more else None,
    }


def _action_id(action: CorporateAction) -> str:
    return str(uuid.uuid5(ACTION_NAMESPACE, f"{action.symbol}|{action.type}|{action.ex_date}"))


def _cusip(symbol: str) -> str:
    """A made-up, stable 9-character CUSIP (the file has none)."""
    return hashlib.sha256(symbol.encode()).hexdigest()[:9].upper()


def _action_dict(action: CorporateAction) -> dict[str, Any]:
    day = action.ex_date.isoformat()
    base: dict[str, Any] = {"id": _action_id(action), "symbol": action.symbol}
    if action.type == "cash_dividend":
        return base | {
            "cusip": _cusip(action.symbol),
            "rate": float(action.rate),
            "special": False,
            "foreign": False,
            "process_date": day,
            "ex_date": day,
            "record_date": day,
            "payable_date": day,  # the simulator pays on the ex-date
        }
    rates = {"new_rate": float(action.new_rate), "old_rate": float(action.old_rate)}
    if action.type == "forward_split":
        return base | {"cusip": _cusip(action.symbol), **rates, "process_date": day, "ex_date": day}
    return base | {
        "old_cusip": _cusip(action.symbol),
        "new_cusip": _cusip(action.symbol + "/new"),
        **rates,
        "process_date": day,
        "ex_date": day,
    }


def _encode_offset(offset: int) -> str:
    return base64.urlsafe_b64encode(f"ca|{offset}".encode()).decode()


def _decode_offset(token: str) -> int:
    try:
        tag, offset = base64.urlsafe_b64decode(token.encode()).decode().split("|")
        if tag != "ca" or int(offset) < 0:
            raise ValueError(token)
        return int(offset)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise data_error("invalid page_token", status=400) from exc
