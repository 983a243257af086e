"""Running totals of each strategy's closed trades, for its emergency-stop rule.

``strategies.lib.emergency.evaluate`` decides from the list of every closed trade; the daemon
asks after every closing sell, and rebuilding that list from the ledger each time costs
O(all trades ever). These totals hold what the three conditions need, updated with the new
closed trades only (read by id, after the last one seen):

- per New York session with a closed trade: its P&L and how many trades it had and won
  (consecutive losing days, and the win rate over the last ``rolling_window_days``);
- the cumulative realised P&L and its peak, in exit order (the current drawdown).

They are built from the ledger on first use (startup) and again whenever the ledger rewrote
closed trades (a trade bust or correction, a fill repriced: ``Ledger.trades_revision``), or a
trade arrives out of exit order (the peak depends on the order). Sums are made in the same
order as ``evaluate`` makes them, so the decision and its text are exactly the same.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from magellan_daemon.ledger.store import Ledger
from magellan_daemon.timefmt import parse_iso
from strategies.api.params import EmergencyStop


@dataclass(slots=True)
class DayTotals:
    """One session's closed trades."""

    pnl: float = 0.0
    trades: int = 0
    wins: int = 0


@dataclass(slots=True)
class StrategyTotals:
    """What the emergency conditions need about one strategy's closed trades."""

    days: dict[date, DayTotals] = field(default_factory=dict)
    dates: list[date] = field(default_factory=list)  # the keys of ``days``, sorted
    cumulative: float = 0.0
    peak: float = 0.0
    last_exit: tuple[datetime, str] | None = None
    last_id: int = 0

    def add_day(self, day: date, pnl: float) -> None:
        """Count one trade in its session (in ledger id order, as ``evaluate`` sums)."""
        totals = self.days.get(day)
        if totals is None:
            totals = self.days[day] = DayTotals()
            bisect.insort(self.dates, day)
        totals.pnl += pnl
        totals.trades += 1
        totals.wins += pnl > 0

    def add_exit(self, key: tuple[datetime, str], pnl: float) -> None:
        """Count one trade in the cumulative P&L (in exit order)."""
        self.cumulative += pnl
        self.peak = max(self.peak, self.cumulative)
        self.last_exit = key


class EmergencyTotals:
    """Per strategy totals over the ledger's closed trades, and the decision from them."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._totals: dict[str, StrategyTotals] = {}
        self._revision = ledger.trades_revision

    def reason(self, strategy: str, params: EmergencyStop) -> str | None:
        """The reason ``strategy`` must halt, or None: ``evaluate`` over all its closed
        trades, from the totals brought up to date with the trades closed since."""
        totals = self._current(strategy)
        for rule in (_losing_streak, _low_win_rate, _drawdown):
            reason = rule(params, totals)
            if reason is not None:
                return reason
        return None

    def _current(self, strategy: str) -> StrategyTotals:
        if self._ledger.trades_revision != self._revision:
            self._revision = self._ledger.trades_revision
            self._totals.clear()  # closed trades were rewritten: build again
        totals = self._totals.get(strategy)
        if totals is None:
            totals = self._totals[strategy] = _built(self._ledger.closed_trades(strategy))
            return totals
        new = self._ledger.closed_trades_after(strategy, totals.last_id)
        if not _in_exit_order(totals.last_exit, new):
            # A trade closed earlier than one counted (a fill learned late): the cumulative
            # P&L and its peak must be walked again in exit order.
            totals = self._totals[strategy] = _built(self._ledger.closed_trades(strategy))
            return totals
        for trade in new:
            pnl = float(trade["pnl"])
            totals.add_day(date.fromisoformat(trade["session_date"]), pnl)
            totals.add_exit(_exit_key(trade), pnl)
            totals.last_id = trade["id"]
        return totals


def _exit_key(trade: dict[str, Any]) -> tuple[datetime, str]:
    return parse_iso(trade["exit_time"]), trade["symbol"]


def _in_exit_order(last: tuple[datetime, str] | None, trades: list[dict[str, Any]]) -> bool:
    """Whether ``trades`` (in id order) come after ``last`` and after each other in exit
    order, so that adding them one by one equals the stable sort of all trades."""
    for trade in trades:
        key = _exit_key(trade)
        if last is not None and key < last:
            return False
        last = key
    return True


def _built(trades: list[dict[str, Any]]) -> StrategyTotals:
    """Totals from every closed trade (oldest id first): days in id order, the cumulative
    P&L in exit order (stable, as ``evaluate`` sorts)."""
    totals = StrategyTotals()
    for trade in trades:
        totals.add_day(date.fromisoformat(trade["session_date"]), float(trade["pnl"]))
        totals.last_id = max(totals.last_id, trade["id"])
    for trade in sorted(trades, key=_exit_key):
        totals.add_exit(_exit_key(trade), float(trade["pnl"]))
    return totals


# The three conditions of strategies.lib.emergency, over the totals (same order, same words).


def _losing_streak(params: EmergencyStop, totals: StrategyTotals) -> str | None:
    n = params.consecutive_losing_days
    last = totals.dates[-n:]
    if len(last) == n and all(totals.days[d].pnl < 0 for d in last):
        return f"{n} consecutive losing days (last {last[-1].isoformat()})"
    return None


def _low_win_rate(params: EmergencyStop, totals: StrategyTotals) -> str | None:
    window = totals.dates[-params.rolling_window_days :]
    trades = sum(totals.days[d].trades for d in window)
    if trades < params.min_trades_for_win_rate:
        return None
    rate = sum(totals.days[d].wins for d in window) / trades
    if rate < params.win_rate_below:
        return (
            f"win rate {rate:.2f} < {params.win_rate_below:.2f} over {trades} trades "
            f"in the last {len(window)} trading days"
        )
    return None


def _drawdown(params: EmergencyStop, totals: StrategyTotals) -> str | None:
    limit = params.drawdown_threshold_pct / 100.0 * params.capital_dollars
    worst = totals.peak - totals.cumulative
    if worst >= limit:
        pct = worst / params.capital_dollars * 100.0
        return (
            f"drawdown {worst:.2f} ({pct:.2f}% of {params.capital_dollars:,.0f}) "
            f">= {params.drawdown_threshold_pct:g}%"
        )
    return None
