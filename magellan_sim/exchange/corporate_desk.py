"""The exchange's corporate-actions desk: splits and dividends applied to the accounts at
00:00 New York of their ex-date (see ``sim.corporate``), and the corporate-actions endpoint.

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
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from magellan_core.corporate_actions import CorporateAction
from magellan_sim.errors import data_error
from magellan_sim.exchange.account import Account, NonTrade
from magellan_sim.exchange.exchange_core import ExchangeCore
from magellan_sim.exchange.wire import dec
from magellan_sim.market.calendar import new_york_date, new_york_midnight
from magellan_sim.market.corporate import dividend_amount, split_holding
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


class CorporateDesk(ExchangeCore):
    """Corporate actions applied to the accounts, and served as Alpaca serves them."""

    # -- applying them -------------------------------------------------------------------

    def _apply_corporate_action(self, action: CorporateAction, t: datetime) -> None:
        for key in sorted(self._accounts):
            account = self._accounts[key]
            if action.is_split:
                self._split(account, action, t)
            else:
                self._pay_dividend(account, action, t)

    def _split(self, account: Account, action: CorporateAction, t: datetime) -> None:
        for order in account.open_orders():
            if order.symbol == action.symbol and order.id in self._working:
                # a replacement not yet live is settled with its old order (rejected)
                self._cancel(order, t)
        position = account.positions.get(action.symbol)
        if position is None:
            return
        ratio = action.ratio
        close = self._adjusted_previous_close(action, t) or position.avg_entry_price / ratio
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
                id=f"{stamp}::{self._uuid()}",
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

    def _adjusted_previous_close(self, action: CorporateAction, t: datetime) -> Decimal | None:
        """The last regular-session price before ``t``, on the post-split scale."""
        close = self.calendar.previous_close(t)
        if close is None:
            return None
        return self._price(action.symbol, close, new_york_midnight(action.ex_date))

    def _dividend_base_close(self, action: CorporateAction) -> Decimal | None:
        """The previous regular close before the action's ex-date, on the ex-date's scale
        (what Alpaca's dividend adjustment divides the dividend by)."""
        return self._adjusted_previous_close(action, new_york_midnight(action.ex_date))

    def _bar_adjustment(self, adjustment: str, now: datetime) -> Callable[[SimBar], SimBar] | None:
        """The function adjusting served bars (None for raw), as known at ``now``."""
        as_of = new_york_date(now)
        return self.corporate.bar_adjuster(adjustment, as_of, self._dividend_base_close)

    # -- serving them ----------------------------------------------------------------------

    def corporate_actions(
        self,
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
        their process date), ``start``..``end`` inclusive, both today by default."""
        self.advance()
        if ids and (symbols or types or start or end):
            raise data_error("ids cannot be combined with other filters", status=400)
        unknown = sorted(set(types or ()) - KNOWN_TYPES)
        if unknown:
            raise data_error(f"invalid types: {', '.join(unknown)}", status=400)
        if not 1 <= limit <= CORPORATE_LIMIT_MAX:
            raise data_error(f"invalid limit: must be between 1 and {CORPORATE_LIMIT_MAX}")
        today = new_york_date(self.clock.now())
        first, last = start or today, end or today
        if not ids and last < first:
            raise data_error("end should not be before start", status=400)
        wanted_ids = set(ids or ())
        chosen = [
            a
            for a in self.corporate.actions
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
