"""The ledger's typed rows: what its queries return (read-only values)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import orjson

from magellan_daemon.domain import OPEN, ClientOrderId
from magellan_daemon.ledger.order_fsm import Verdict
from magellan_daemon.timefmt import parse_iso
from strategies.api.model import FixedDollars, Intent, RiskBased


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderRow:
    """An order as the ledger knows it."""

    client_order_id: ClientOrderId
    account: str
    strategy: str
    symbol: str
    side: str
    order_type: str
    qty: Decimal
    stop_price: Decimal | None
    time_in_force: str
    leg: str
    signal_time: datetime
    intent_id: int | None
    replaces: ClientOrderId | None
    status: str
    filled_qty: Decimal
    filled_avg_price: Decimal | None
    broker_order_id: str | None
    created_at: datetime
    updated_at: datetime

    @property
    def is_open(self) -> bool:
        """Still able to fill (or not yet known not to exist)."""
        return self.status in OPEN


@dataclass(frozen=True, slots=True, kw_only=True)
class IntentRow:
    """A persisted intent and its execution status."""

    id: int
    intent: Intent
    status: str
    status_reason: str
    not_before: datetime | None
    expires_at: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class AppliedFill:
    """A fill increment the ledger accepted (not a duplicate)."""

    order: OrderRow
    qty: Decimal
    price: Decimal
    ts: datetime
    position_after: Decimal  # the strategy's position in the symbol after this fill


@dataclass(frozen=True, slots=True, kw_only=True)
class Applied:
    """What ``apply_event`` did: the order after it, the fill increment if any, and how the
    state machine judged the event (``verdict``, with ``reason`` when not applied)."""

    order: OrderRow | None
    previous_status: str | None
    fill: AppliedFill | None
    duplicate: bool = False
    verdict: Verdict = "repeat"
    reason: str = ""
    restated: bool = False  # a trade bust / correction rewrote the order's fills
    repriced: bool = False  # a fill priced from averages took its execution's own price
    dropped: str = ""  # why the event was not applied at all (see FillTables.apply_event)

    @property
    def status_changed(self) -> bool:
        """True when the event moved the order to another status."""
        return self.order is not None and self.order.status != self.previous_status

    @property
    def invalid(self) -> str | None:
        """Why the event contradicts the order's state (logged at ERROR), else None."""
        return self.reason if self.verdict == "invalid" else None


@dataclass(frozen=True, slots=True, kw_only=True)
class PositionRow:
    """One strategy's own position in one symbol."""

    strategy: str
    symbol: str
    account: str
    qty: Decimal
    avg_price: Decimal
    opened_at: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class HaltRow:
    """A halt: no new entries for ``strategy`` until an operator resumes it."""

    strategy: str
    reason: str
    since: datetime
    source: str  # "cli", "emergency"


def _dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def sizing_json(obj: Any) -> str:
    """An intent's sizing as stored in the ``intents.sizing`` column."""
    fields = {name: getattr(obj, name) for name in obj.__slots__}
    return orjson.dumps({"kind": type(obj).__name__, **fields}).decode()


def order_row(r: sqlite3.Row) -> OrderRow:
    """An ``orders`` row as an ``OrderRow``."""
    return OrderRow(
        client_order_id=ClientOrderId(r["client_order_id"]),
        account=r["account"],
        strategy=r["strategy"],
        symbol=r["symbol"],
        side=r["side"],
        order_type=r["order_type"],
        qty=Decimal(r["qty"]),
        stop_price=_dec(r["stop_price"]),
        time_in_force=r["time_in_force"],
        leg=r["leg"],
        signal_time=parse_iso(r["signal_time"]),
        intent_id=r["intent_id"],
        replaces=None if r["replaces"] is None else ClientOrderId(r["replaces"]),
        status=r["status"],
        filled_qty=Decimal(r["filled_qty"]),
        filled_avg_price=_dec(r["filled_avg_price"]),
        broker_order_id=r["broker_order_id"],
        created_at=parse_iso(r["created_at"]),
        updated_at=parse_iso(r["updated_at"]),
    )


def intent_row(r: sqlite3.Row) -> IntentRow:
    """An ``intents`` row as an ``IntentRow`` (its sizing decoded)."""
    sizing = None
    if r["sizing"]:
        data = orjson.loads(r["sizing"])
        kind = data.pop("kind")
        sizing = FixedDollars(**data) if kind == "FixedDollars" else RiskBased(**data)
    intent = Intent(
        strategy=r["strategy"],
        symbol=r["symbol"],
        action=r["action"],
        leg=r["leg"],
        signal_time=parse_iso(r["signal_time"]),
        reason=r["reason"],
        qty=r["qty"],
        sizing=sizing,
        stop_price=None if r["stop_price"] is None else float(r["stop_price"]),
        execute=r["execute"],
    )
    return IntentRow(
        id=r["id"],
        intent=intent,
        status=r["status"],
        status_reason=r["status_reason"],
        not_before=None if r["not_before"] is None else parse_iso(r["not_before"]),
        expires_at=None if r["expires_at"] is None else parse_iso(r["expires_at"]),
    )


def halt_row(r: sqlite3.Row) -> HaltRow:
    """A ``halts`` row as a ``HaltRow``."""
    return HaltRow(
        strategy=r["strategy"], reason=r["reason"], since=parse_iso(r["since"]), source=r["source"]
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Booking:
    """One strategy's part of one applied corporate action (split or cash dividend)."""

    symbol: str
    ex_date: date
    kind: str  # split, cash_dividend
    strategy: str
    account: str
    qty_before: Decimal
    qty_after: Decimal
    avg_before: Decimal
    avg_after: Decimal
    cash: Decimal  # cash in lieu or dividend credited to the strategy
    realized: Decimal  # P&L it realised (in the ex-date's daily P&L)


def booking_row(r: sqlite3.Row) -> Booking:
    """A ``corporate_action_bookings`` row as a ``Booking``."""
    return Booking(
        symbol=r["symbol"],
        ex_date=date.fromisoformat(r["ex_date"]),
        kind=r["kind"],
        strategy=r["strategy"],
        account=r["account"],
        qty_before=Decimal(r["qty_before"]),
        qty_after=Decimal(r["qty_after"]),
        avg_before=Decimal(r["avg_before"]),
        avg_after=Decimal(r["avg_after"]),
        cash=Decimal(r["cash"]),
        realized=Decimal(r["realized"]),
    )
