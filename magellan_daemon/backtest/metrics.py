"""A backtest's performance metrics: pure arithmetic on an equity series and closed trades.

No I/O. The equity series is the mark-to-market equity at each session's close (New York
date -> dollars), in date order; the daily return is ``r_t = E_t / E_{t-1} - 1`` with
``E_0`` the starting cash. Ratios that cannot be computed (no trades, no losing day, a flat
series) are ``None`` rather than infinities, so that ``summary.json`` stays plain JSON.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

SESSIONS_PER_YEAR = 252

METRIC_KEYS = (
    "start_cash",
    "end_equity",
    "total_return_pct",
    "cagr_pct",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown_pct",
    "max_drawdown_usd",
    "max_drawdown_start",
    "max_drawdown_end",
    "profit_factor",
    "expectancy_usd",
    "sqn",
    "win_rate",
    "trades",
    "avg_hold_minutes",
    "max_consecutive_losses",
    "best_trade_usd",
    "worst_trade_usd",
    "exposure",
    "market_change_pct",
)


@dataclass(frozen=True, slots=True)
class Trade:
    """One closed round trip (flat to flat)."""

    symbol: str
    pnl: float
    entry_time: datetime
    exit_time: datetime
    exit_reason: str = ""
    strategy: str = ""


@dataclass(frozen=True, slots=True)
class Drawdown:
    """The deepest fall of equity from a running peak, in percent of that peak.

    ``start``: the date whose close set the peak (the first session when the peak is the
    starting cash); ``end``: the date of the trough. Both None when equity never fell.
    """

    pct: float
    usd: float
    start: date | None
    end: date | None


def daily_returns(start_cash: float, equity: Sequence[float]) -> list[float]:
    """``r_t = E_t / E_{t-1} - 1`` for each session, with ``E_0 = start_cash``."""
    previous, out = start_cash, []
    for value in equity:
        out.append(value / previous - 1 if previous else 0.0)
        previous = value
    return out


def sharpe(returns: Sequence[float]) -> float | None:
    """mean(r) / stdev(r, ddof=1) * sqrt(252), risk-free 0; None under two returns or with
    no variation."""
    if len(returns) < 2:
        return None
    mean = sum(returns) / len(returns)
    var = sum((r - mean) ** 2 for r in returns) / (len(returns) - 1)
    if var <= 0:
        return None
    return mean / math.sqrt(var) * math.sqrt(SESSIONS_PER_YEAR)


def sortino(returns: Sequence[float]) -> float | None:
    """mean(r) / sqrt(mean(min(r, 0)^2)) * sqrt(252); None with no losing session."""
    if not returns:
        return None
    downside = math.sqrt(sum(min(r, 0.0) ** 2 for r in returns) / len(returns))
    if downside <= 0:
        return None
    return sum(returns) / len(returns) / downside * math.sqrt(SESSIONS_PER_YEAR)


def max_drawdown(start_cash: float, days: Sequence[tuple[date, float]]) -> Drawdown:
    """The deepest percentage fall from the running peak (starting at ``start_cash``)."""
    peak, peak_day = start_cash, days[0][0] if days else None
    worst = Drawdown(0.0, 0.0, None, None)
    for day, value in days:
        if value > peak:
            peak, peak_day = value, day
            continue
        pct = (peak - value) / peak * 100 if peak > 0 else 0.0
        if pct > worst.pct:
            worst = Drawdown(pct, peak - value, peak_day, day)
    return worst


def cagr_pct(start_cash: float, end_equity: float, sessions: int) -> float | None:
    """Compound annual growth, a year being 252 sessions; None without sessions or with
    equity at or under zero."""
    if sessions <= 0 or start_cash <= 0 or end_equity <= 0:
        return None
    return ((end_equity / start_cash) ** (SESSIONS_PER_YEAR / sessions) - 1) * 100


def longest_losing_streak(pnls: Iterable[float]) -> int:
    """The most losing trades (P&L < 0) in a row, in exit order."""
    run = best = 0
    for pnl in pnls:
        run = run + 1 if pnl < 0 else 0
        best = max(best, run)
    return best


def market_change_pct(prices: Iterable[tuple[float, float]]) -> float | None:
    """Equal-weight buy and hold: the mean of each symbol's (last / first - 1), percent."""
    changes = [(last / first - 1) * 100 for first, last in prices if first > 0]
    return sum(changes) / len(changes) if changes else None


def trade_stats(trades: Sequence[Trade]) -> dict[str, Any]:
    """The trade-based figures: count, win rate, P&L, profit factor, expectancy, SQN,
    best and worst trade, average hold and the longest losing streak."""
    pnls = [t.pnl for t in sorted(trades, key=lambda t: t.exit_time)]
    n = len(pnls)
    gains = sum(p for p in pnls if p > 0)
    losses = -sum(p for p in pnls if p < 0)
    mean = sum(pnls) / n if n else None
    sqn = None
    if n >= 2 and mean is not None:
        sd = math.sqrt(sum((p - mean) ** 2 for p in pnls) / (n - 1))
        sqn = math.sqrt(n) * mean / sd if sd > 0 else None
    holds = [(t.exit_time - t.entry_time).total_seconds() / 60 for t in trades]
    return {
        "trades": n,
        "pnl_usd": sum(pnls),
        "win_rate": sum(1 for p in pnls if p > 0) / n if n else None,
        "profit_factor": gains / losses if losses > 0 else None,
        "expectancy_usd": mean,
        "sqn": sqn,
        "best_trade_usd": max(pnls) if pnls else None,
        "worst_trade_usd": min(pnls) if pnls else None,
        "avg_hold_minutes": sum(holds) / n if n else None,
        "max_consecutive_losses": longest_losing_streak(pnls),
    }


def metrics(
    start_cash: float,
    equity_per_day: Sequence[tuple[date, float]],
    trades: Sequence[Trade],
    exposure: float,
    market_change: float | None,
) -> dict[str, Any]:
    """Every key of ``METRIC_KEYS`` for one equity series and its trades."""
    values = [v for _, v in equity_per_day]
    end = values[-1] if values else start_cash
    returns = daily_returns(start_cash, values)
    dd = max_drawdown(start_cash, equity_per_day)
    cagr = cagr_pct(start_cash, end, len(values))
    stats = trade_stats(trades)
    out = {
        "start_cash": start_cash,
        "end_equity": end,
        "total_return_pct": (end / start_cash - 1) * 100 if start_cash else None,
        "cagr_pct": cagr,
        "sharpe": sharpe(returns),
        "sortino": sortino(returns),
        "calmar": cagr / dd.pct if cagr is not None and dd.pct > 0 else None,
        "max_drawdown_pct": dd.pct,
        "max_drawdown_usd": dd.usd,
        "max_drawdown_start": None if dd.start is None else dd.start.isoformat(),
        "max_drawdown_end": None if dd.end is None else dd.end.isoformat(),
        "exposure": exposure,
        "market_change_pct": market_change,
    }
    out.update({k: v for k, v in stats.items() if k in METRIC_KEYS})
    return {key: out[key] for key in METRIC_KEYS}


def monthly_returns(
    start_cash: float, equity_per_day: Sequence[tuple[date, float]]
) -> dict[str, float]:
    """``YYYY-MM`` -> percent change of the month's last close over the previous month's
    (the starting cash for the first month)."""
    month_end: dict[str, float] = {}
    for day, value in equity_per_day:
        month_end[f"{day.year:04d}-{day.month:02d}"] = value
    out, previous = {}, start_cash
    for month, value in month_end.items():
        out[month] = (value / previous - 1) * 100 if previous else 0.0
        previous = value
    return out


def underwater_pct(start_cash: float, equity: Sequence[float]) -> list[float]:
    """Each session's fall below the running peak, in percent (0 at a new high, negative
    below it)."""
    peak, out = start_cash, []
    for value in equity:
        peak = max(peak, value)
        out.append((value / peak - 1) * 100 if peak > 0 else 0.0)
    return out
