"""The equity curve, marked to market: the P&L the ledger's fills made (realised) plus what
the positions open at each instant are worth against their cost (unrealised), priced at the
last bar's close (a past session) or the broker's last price (now). Pure: no I/O.

``session_equity`` and ``equity_now`` replay every fill; ``RunningBook`` gives the same
figures from the fills stored since it last looked (the status page's refresh every few
seconds must not cost more as the ledger ages)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

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

    def copy(self) -> _Book:
        return _Book(self.realized, dict(self.held), dict(self.last_fill_price))


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


class RunningBook:
    """``session_equity`` and ``equity_now`` kept fill by fill: the book replayed up to the
    last fill read (``cursor``: the fills table's id) and its state at each passed session
    close of the window. States, not values: the daily closes that value a past session
    arrive after it.

    ``_Book`` depends on the order of one symbol's fills (a position's average cost, the
    symbol's last price); realised P&L is a sum, and fills of other symbols commute. So new
    fills can be applied on top when each comes after every applied fill of its symbol and
    after every kept close. ``advance`` refuses (False, nothing changed) fills that do not,
    and a window it cannot extend; the caller then replays every fill into a new book."""

    def __init__(self) -> None:
        self.cursor = 0
        self._book = _Book()
        self._last: dict[str, tuple[str, int]] = {}  # symbol -> (ts, id) of its last fill applied
        self._kept: dict[datetime, _Book] = {}  # passed session close -> the book then
        self._ahead: list[Mapping[str, Any]] = []  # read, timed after now: applied once passed
        self._sessions: list[Session] = []
        self._now: datetime | None = None

    def advance(
        self, fills: Sequence[Mapping[str, Any]], sessions: Sequence[Session], now: datetime
    ) -> bool:
        """Take in ``fills`` (each with its ``id``), the rows stored after ``cursor``, and
        bring the book and the kept states to ``now`` over ``sessions`` (oldest first)."""
        passed = [s.close for s in sessions if s.close <= now]
        before = self._now
        if before is not None:
            if now < before:
                return False  # the clock went back: kept states may hold fills after now
            if any(c <= before and c not in self._kept for c in passed):
                return False  # a passed session the window did not hold (a new calendar)
        waiting = [*self._ahead, *fills]
        due = sorted(
            (f for f in waiting if parse_iso(f["ts"]) <= now), key=lambda f: (f["ts"], f["id"])
        )
        newest_kept = max(self._kept, default=None)
        for fill in due:
            if newest_kept is not None and parse_iso(fill["ts"]) <= newest_kept:
                return False  # timed before a close whose state is kept (booked late)
            last = self._last.get(fill["symbol"])
            if last is not None and (fill["ts"], fill["id"]) < last:
                return False  # timed before a fill of its symbol already applied
        closes = sorted(c for c in passed if c not in self._kept)
        i = 0
        for fill in due:
            t = parse_iso(fill["ts"])
            while i < len(closes) and closes[i] < t:
                self._kept[closes[i]] = self._book.copy()
                i += 1
            self._book.apply(fill)
            self._last[fill["symbol"]] = (fill["ts"], fill["id"])
        for close in closes[i:]:
            self._kept[close] = self._book.copy()
        self._kept = {c: self._kept[c] for c in passed}  # the window moved on: drop the rest
        self._ahead = [f for f in waiting if parse_iso(f["ts"]) > now]
        self.cursor = max([self.cursor, *(int(f["id"]) for f in fills)])
        self._sessions, self._now = list(sessions), now
        return True

    def curve(
        self, closes: Mapping[tuple[str, date], Decimal], live: Mapping[str, Decimal]
    ) -> list[EquityPoint]:
        """``session_equity`` at the last ``advance``: each passed session's kept state at
        its daily closes, the open one's live book at the live prices."""
        assert self._now is not None, "advance first"
        marks: dict[date, dict[str, Decimal]] = {}
        for (symbol, day), price in closes.items():
            marks.setdefault(day, {})[symbol] = price
        points = []
        for session in self._sessions:
            if session.open > self._now:
                break
            if session.close <= self._now:
                mark = marks.get(session.date, {})
                points.append(EquityPoint(session.close, self._kept[session.close].value(mark)))
            else:
                points.append(EquityPoint(self._now, self._book.value(dict(live))))
        return points

    def equity_now(self, live: Mapping[str, Decimal]) -> Decimal:
        """``equity_now`` at the last ``advance``."""
        return self._book.value(live)
