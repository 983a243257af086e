"""Mark-to-market at each session's close: the open positions of every strategy and the
last bar's close of their symbols, taken while the backtest drives (once per session, not
per bar), so that an open position's loss shows on the day it happens, not when it closes.

The drive makes each session close an instant of its own (``run.drive``: the exchange
processes what it filled up to the close, the ledger books it) and then ``take``s the
snapshot. The equity per strategy is built afterwards from these snapshots and the ledger's
realised P&L (``equity``).
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import date, datetime

from magellan_daemon.ledger.store import Ledger
from magellan_daemon.timefmt import NEW_YORK, parse_iso
from magellan_sim.market.market import MarketData


@dataclass(frozen=True, slots=True)
class Holding:
    """A strategy's open position at a close, priced at the last bar's close."""

    strategy: str
    symbol: str
    qty: float
    avg_price: float
    last_price: float

    @property
    def unrealized(self) -> float:
        return self.qty * (self.last_price - self.avg_price)


@dataclass(frozen=True, slots=True)
class CloseMark:
    """One session close: when, its New York date, and what was held."""

    close: datetime
    day: date
    holdings: tuple[Holding, ...]


class CloseMarks:
    """The snapshots of one run, one per session close in the range."""

    def __init__(self, ledger: Ledger, market: MarketData, closes: list[datetime]) -> None:
        self._ledger = ledger
        self._market = market
        self._closes = sorted(closes)
        self._next = 0
        self.marks: list[CloseMark] = []

    def due(self, before: datetime | None = None) -> list[datetime]:
        """The closes not yet taken that are before ``before`` (None: all of them). Called
        before every step: it reads from the next close on and stops at the first one not
        due, rather than scanning every close left in the window (years of them)."""
        closes, i = self._closes, self._next
        if before is None:
            return closes[i:]
        j = i
        while j < len(closes) and closes[j] < before:
            j += 1
        return closes[i:j]

    def take(self, close: datetime) -> None:
        """Snapshot the positions now, as those at ``close`` (the next close due)."""
        assert close == self._closes[self._next], "closes are taken in order"
        self._next += 1
        holdings = []
        for p in self._ledger.positions():
            bar = self._market.latest_bar(p.symbol, close)
            last = float(p.avg_price) if bar is None else bar.close
            holdings.append(Holding(p.strategy, p.symbol, float(p.qty), float(p.avg_price), last))
        day = close.astimezone(NEW_YORK).date()
        self.marks.append(CloseMark(close=close, day=day, holdings=tuple(holdings)))


def equity(
    marks: list[CloseMark], ledger: Ledger, start_cash: float, strategy: str | None
) -> list[tuple[date, float]]:
    """(New York date, equity at its close) for ``strategy`` (None: the whole run): the
    starting cash, plus the P&L realised by fills up to the close, plus the open positions
    at the last bar's close."""
    realized = sorted((parse_iso(f["ts"]), float(f["realized"])) for f in ledger.fills(strategy))
    times = [t for t, _ in realized]
    cumulative, total = [], 0.0
    for _, pnl in realized:
        total += pnl
        cumulative.append(total)
    out = []
    for mark in marks:
        i = bisect_right(times, mark.close)
        open_pnl = sum(
            h.unrealized for h in mark.holdings if strategy is None or h.strategy == strategy
        )
        out.append((mark.day, start_cash + (cumulative[i - 1] if i else 0.0) + open_pnl))
    return out
