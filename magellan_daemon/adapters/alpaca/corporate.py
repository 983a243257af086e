"""Alpaca's corporate actions and non-trade account activities, converted to our values.

``actions_from_set``: alpaca-py's ``CorporateActionsSet`` (``forward_splits``,
``reverse_splits``, ``cash_dividends``; rates as floats) as ``CorporateAction`` values with
decimal rates. ``activity_from_json``: one entry of ``GET /v2/account/activities/{type}``
(``SPLIT``, ``CIL``, ``DIV``) as a ``domain.AccountActivity``. A malformed entry raises
``ValueError`` inside the broker call, so it fails as a classified broker error.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from magellan_core.corporate_actions import ACTION_TYPES, CorporateAction
from magellan_daemon.domain import AccountActivity

# The keys of the corporate-actions reply that we read, with the type of their entries.
_SET_KEYS = {f"{kind}s": kind for kind in ACTION_TYPES}


def actions_from_set(result: Any) -> list[CorporateAction]:
    """The splits and cash dividends of a ``CorporateActionsSet`` (or its raw dict)."""
    data = result if isinstance(result, dict) else getattr(result, "data", {})
    found: list[CorporateAction] = []
    for key, kind in _SET_KEYS.items():
        for item in data.get(key, ()) or ():
            fields = item if isinstance(item, dict) else item.model_dump()
            ex_date = fields["ex_date"]
            if isinstance(ex_date, str):
                ex_date = date.fromisoformat(ex_date)
            if kind == "cash_dividend":
                new = old = Decimal(1)
                rate = _decimal(fields["rate"])
            else:
                new, old, rate = (
                    _decimal(fields["new_rate"]),
                    _decimal(fields["old_rate"]),
                    Decimal(0),
                )
            if new <= 0 or old <= 0 or rate < 0:
                raise ValueError(f"corporate action with non-positive rates: {fields!r}")
            found.append(CorporateAction(str(fields["symbol"]), kind, ex_date, new, old, rate))  # type: ignore[arg-type]
    found.sort(key=lambda a: (a.ex_date, a.symbol, a.type))
    return found


def activity_from_json(data: dict[str, Any]) -> AccountActivity:
    """One non-trade activity as ``GET /v2/account/activities`` lists it."""
    day = data.get("date") or str(data.get("transaction_time", ""))[:10]
    return AccountActivity(
        activity_type=str(data["activity_type"]),
        symbol=str(data.get("symbol") or ""),
        date=date.fromisoformat(str(day)[:10]),
        qty=_decimal(data.get("qty") or 0),
        net_amount=_decimal(data.get("net_amount") or 0),
    )


def _decimal(value: Any) -> Decimal:
    """A rate or amount as Alpaca sends it (float or text) as the decimal it was written as."""
    number = Decimal(str(value))
    if not number.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return number
