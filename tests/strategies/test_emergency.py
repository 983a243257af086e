"""Emergency stop evaluator: each condition tripping on its own, and its boundaries."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from strategies.api.params import EmergencyStop
from strategies.lib.emergency import ClosedTrade, evaluate

PARAMS = EmergencyStop(
    consecutive_losing_days=3,
    win_rate_below=0.40,
    rolling_window_days=5,
    min_trades_for_win_rate=4,
    drawdown_threshold_pct=10.0,
    capital_dollars=10_000,
)
DAY0 = date(2024, 4, 1)


def trades(*days: tuple[float, ...]) -> list[ClosedTrade]:
    """One trade per P&L value; ``days[i]`` holds the trades of session ``DAY0 + i``."""
    out = []
    for i, pnls in enumerate(days):
        session = DAY0 + timedelta(days=i)
        for j, pnl in enumerate(pnls):
            exit_time = datetime(session.year, session.month, session.day, 14, j, tzinfo=UTC)
            out.append(
                ClosedTrade(
                    symbol="AMC",
                    entry_time=exit_time - timedelta(minutes=30),
                    exit_time=exit_time,
                    qty=100,
                    entry_price=5.0,
                    exit_price=5.0 + pnl / 100,
                    pnl=pnl,
                    session_date=session,
                )
            )
    return out


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        ((), None),
        # losing streak: the last 3 days all negative (2 losses + a small net win before)
        (((10.0,), (-1.0,), (-1.0,), (-1.0,)), "3 consecutive losing days (last 2024-04-04)"),
        # only 2 losing days in a row
        (((-1.0,), (10.0,), (-1.0,), (-1.0,)), None),
        # a day with a losing and a bigger winning trade is a winning day
        (((-1.0,), (-1.0,), (-5.0, 6.0)), None),
        # a flat day (P&L exactly 0) is not a losing day
        (((-1.0,), (-1.0,), (0.0,)), None),
    ],
)
def test_losing_streak(history: tuple[tuple[float, ...], ...], expected: str | None) -> None:
    streak_only = PARAMS.model_copy(update={"min_trades_for_win_rate": 1_000})
    assert evaluate(streak_only, trades(*history)) == expected


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        # 1 win of 4 trades = 0.25 < 0.40 (no 3-day losing streak: day 2 is net positive)
        (
            ((-1.0,), (5.0, -1.0), (-1.0,)),
            "win rate 0.25 < 0.40 over 4 trades in the last 3 trading days",
        ),
        # 2 of 5 = 0.40: not below
        (((-1.0,), (5.0, -1.0), (5.0, -1.0)), None),
        # only 3 trades: too few for the rule
        (((-1.0,), (5.0,), (-1.0,)), None),
        # the window is the last 5 trading days: the early losses fall out of it
        (
            ((-1.0, -1.0, -1.0, -1.0), (5.0,), (5.0,), (-1.0,), (5.0,), (5.0,)),
            None,
        ),
    ],
)
def test_win_rate(history: tuple[tuple[float, ...], ...], expected: str | None) -> None:
    assert evaluate(PARAMS, trades(*history)) == expected


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        # peak 500, now 500 - 1000 = -500: drawdown 1000 = 10% of 10k
        (((500.0,), (-1_000.0,)), "drawdown 1000.00 (10.00% of 10,000) >= 10%"),
        # 999.99: just under
        (((500.0,), (-999.99,)), None),
        # the peak starts at the capital: losing 1000 from the start counts
        (((-1_000.0,),), "drawdown 1000.00 (10.00% of 10,000) >= 10%"),
        # recovered: the dip is over
        (((500.0,), (-1_000.0,), (800.0,)), None),
    ],
)
def test_drawdown(history: tuple[tuple[float, ...], ...], expected: str | None) -> None:
    assert evaluate(PARAMS, trades(*history)) == expected


def test_order_of_trades_does_not_matter() -> None:
    history = trades((500.0,), (-1_000.0,), (800.0,))
    assert evaluate(PARAMS, list(reversed(history))) is None
