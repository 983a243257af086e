"""Emergency stop evaluator: should a strategy stop opening positions? (pure)

The daemon calls ``evaluate`` with the strategy's closed trades after each exit; a non-None
answer halts the strategy's entries until an operator resumes it (exits keep working).

"Days" here are the sessions on which the strategy closed at least one trade: a session
without a closed trade neither breaks nor extends a losing streak, and the win-rate window
is the last ``rolling_window_days`` such sessions. The evaluator sees trades only, not the
calendar, and a strategy that did not trade had neither a winning nor a losing day.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from strategies.api.params import EmergencyStop


@dataclass(frozen=True, slots=True, kw_only=True)
class ClosedTrade:
    """One round trip (or one exit leg of it) with its realised P&L in dollars."""

    symbol: str
    entry_time: datetime
    exit_time: datetime
    qty: int
    entry_price: float
    exit_price: float
    pnl: float
    session_date: date  # New York session of the exit


def _pnl_by_day(trades: Sequence[ClosedTrade]) -> list[tuple[date, float]]:
    days: dict[date, float] = {}
    for trade in trades:
        days[trade.session_date] = days.get(trade.session_date, 0.0) + trade.pnl
    return sorted(days.items())


def _losing_streak(params: EmergencyStop, trades: Sequence[ClosedTrade]) -> str | None:
    days = _pnl_by_day(trades)
    n = params.consecutive_losing_days
    last = days[-n:]
    if len(last) == n and all(pnl < 0 for _, pnl in last):
        return f"{n} consecutive losing days (last {last[-1][0].isoformat()})"
    return None


def _low_win_rate(params: EmergencyStop, trades: Sequence[ClosedTrade]) -> str | None:
    window = {d for d, _ in _pnl_by_day(trades)[-params.rolling_window_days :]}
    recent = [t for t in trades if t.session_date in window]
    if len(recent) < params.min_trades_for_win_rate:
        return None
    rate = sum(1 for t in recent if t.pnl > 0) / len(recent)
    if rate < params.win_rate_below:
        return (
            f"win rate {rate:.2f} < {params.win_rate_below:.2f} over {len(recent)} trades "
            f"in the last {len(window)} trading days"
        )
    return None


def _drawdown(params: EmergencyStop, trades: Sequence[ClosedTrade]) -> str | None:
    limit = params.drawdown_threshold_pct / 100.0 * params.capital_dollars
    cumulative = peak = 0.0
    for trade in sorted(trades, key=lambda t: (t.exit_time, t.symbol)):
        cumulative += trade.pnl
        peak = max(peak, cumulative)
    # The drawdown NOW (not the worst ever): once P&L has recovered, an old dip is no reason.
    worst = peak - cumulative
    if worst >= limit:
        pct = worst / params.capital_dollars * 100.0
        return (
            f"drawdown {worst:.2f} ({pct:.2f}% of {params.capital_dollars:,.0f}) "
            f">= {params.drawdown_threshold_pct:g}%"
        )
    return None


def evaluate(params: EmergencyStop, closed_trades: Sequence[ClosedTrade]) -> str | None:
    """The reason the strategy must halt, or None. Checks, in order: consecutive losing
    days, win rate over the rolling window, the current drawdown of cumulative realised P&L
    from its peak (the peak starts at 0, i.e. the capital). The daemon passes the trades
    since the last operator resume, so a resumed strategy starts with a clean record."""
    for rule in (_losing_streak, _low_win_rate, _drawdown):
        reason = rule(params, closed_trades)
        if reason is not None:
            return reason
    return None
