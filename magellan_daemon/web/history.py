"""The equity curve, marked to market: the P&L the ledger's fills made (realised) plus what
the positions open at each instant are worth against their cost (unrealised), priced at the
last bar's close (a past session) or the broker's last price (now). Pure: no I/O."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from magellan_daemon.timefmt import parse_iso
from strategies.api.session import Session

ZERO = Decimal(0)


@dataclass(slots=True)
class _Book:
    """Positions (qty, average cost) per (strategy, symbol) and the realised P&L so far."""

    realized: Decimal = ZERO
    held: dict[tuple[str, str], tuple[Decimal, Decimal]] = field(default_factory=dict)
    last_fill_price: dict[str, Decimal] = field(default_factory=dict)

    def apply(self, fill: Mapping[str, str]) -> None:
        key = (fill["strategy"], fill["symbol"])
        qty, price = Decimal(fill["qty"]), Decimal(fill["price"])
        held, avg = self.held.get(key, (ZERO, ZERO))
        self.realized += Decimal(fill.get("realized") or "0")
        self.last_fill_price[fill["symbol"]] = price
        if fill["side"] == "buy":
            total = held + qty
            self.held[key] = (total, (held * avg + qty * price) / total if total else ZERO)
        else:
            left = held - qty
            self.held[key] = (left, avg if left else ZERO)

    def value(self, mark: Mapping[str, Decimal]) -> Decimal:
        """Realised plus unrealised at ``mark`` (a symbol without one: its last fill)."""
        open_pl = ZERO
        for (_, symbol), (qty, avg) in self.held.items():
            if qty:
                price = mark.get(symbol, self.last_fill_price.get(symbol, avg))
                open_pl += qty * (price - avg)
        return self.realized + open_pl


@dataclass(frozen=True, slots=True)
class EquityPoint:
    """Equity (P&L since the ledger began, marked to market) at one instant."""

    t: datetime
    equity: Decimal


def session_equity(
    fills: Iterable[Mapping[str, str]],
    sessions: Sequence[Session],
    closes: Mapping[tuple[str, date], Decimal],
    now: datetime,
    live: Mapping[str, Decimal],
) -> list[EquityPoint]:
    """One point per session: at its close (a past one) or at ``now`` (one still open),
    every fill up to then applied, the open positions priced at that session's daily
    close (past) or the live price (now)."""
    ordered = sorted(fills, key=lambda f: f["ts"])
    book, i = _Book(), 0
    points = []
    for session in sessions:
        if session.open > now:
            break
        until = min(session.close, now)
        while i < len(ordered) and parse_iso(ordered[i]["ts"]) <= until:
            book.apply(ordered[i])
            i += 1
        if until < session.close:
            mark = dict(live)
        else:
            mark = {s: p for (s, d), p in closes.items() if d == session.date}
        points.append(EquityPoint(until, book.value(mark)))
    return points


def equity_now(fills: Iterable[Mapping[str, str]], live: Mapping[str, Decimal]) -> Decimal:
    """Equity at this instant: every fill applied, open positions at the live price."""
    book = _Book()
    for fill in sorted(fills, key=lambda f: f["ts"]):
        book.apply(fill)
    return book.value(live)
