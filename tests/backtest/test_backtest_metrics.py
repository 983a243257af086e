"""The backtest's metrics (pure) on a small series worked by hand, and against
empyrical-reloaded (an independent implementation) where it is installed."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import pytest

from magellan_daemon.backtest import metrics
from magellan_daemon.backtest.metrics import Trade

CASH = 100.0
# E_0 = 100, then closes of 110 (+10%), 99 (-10%), 103.95 (+5%), 101.871 (-2%).
DAYS = [
    (date(2024, 1, 30), 110.0),
    (date(2024, 1, 31), 99.0),
    (date(2024, 2, 1), 103.95),
    (date(2024, 2, 2), 101.871),
]
T0 = datetime(2024, 1, 30, 15, 0, tzinfo=UTC)


def _trade(pnl: float, hours: int, hold_minutes: int, symbol: str = "AAA") -> Trade:
    entry = T0 + timedelta(hours=hours)
    return Trade(symbol, pnl, entry, entry + timedelta(minutes=hold_minutes), "exit")


# Exit order: +50, -20, -10, +30, -5 (a losing streak of 2).
TRADES = [
    _trade(50, 0, 30),
    _trade(-20, 1, 60, "BBB"),
    _trade(-10, 2, 90),
    _trade(30, 3, 120, "BBB"),
    _trade(-5, 4, 150),
]


def test_daily_returns_start_from_the_starting_cash() -> None:
    returns = metrics.daily_returns(CASH, [v for _, v in DAYS])
    assert returns == pytest.approx([0.10, -0.10, 0.05, -0.02])


def test_the_series_worked_by_hand() -> None:
    m = metrics.metrics(CASH, DAYS, TRADES, exposure=0.5, market_change=3.0)
    assert list(m) == list(metrics.METRIC_KEYS)
    # r = 0.10, -0.10, 0.05, -0.02: mean 0.0075; squared deviations sum to 0.022675.
    assert m["sharpe"] == pytest.approx(0.0075 / math.sqrt(0.022675 / 3) * math.sqrt(252))
    # Downside: (0.01 + 0.0004) / 4 sessions.
    assert m["sortino"] == pytest.approx(0.0075 / math.sqrt(0.0104 / 4) * math.sqrt(252))
    assert m["end_equity"] == 101.871
    assert m["total_return_pct"] == pytest.approx(1.871)
    assert m["cagr_pct"] == pytest.approx((1.01871**63 - 1) * 100)  # 4 sessions = 4/252 year
    # Deepest fall: the 110 peak of 2024-01-30 to 99 on 2024-01-31 (10%, $11).
    assert m["max_drawdown_pct"] == pytest.approx(10.0)
    assert m["max_drawdown_usd"] == pytest.approx(11.0)
    assert (m["max_drawdown_start"], m["max_drawdown_end"]) == ("2024-01-30", "2024-01-31")
    assert m["calmar"] == pytest.approx(m["cagr_pct"] / 10.0)
    # Trades: gains 80, losses 35, mean 9, squared deviations 3520 over 4.
    assert m["trades"] == 5
    assert m["win_rate"] == pytest.approx(0.4)
    assert m["profit_factor"] == pytest.approx(80 / 35)
    assert m["expectancy_usd"] == pytest.approx(9.0)
    assert m["sqn"] == pytest.approx(math.sqrt(5) * 9 / math.sqrt(3520 / 4))
    assert (m["best_trade_usd"], m["worst_trade_usd"]) == (50, -20)
    assert m["avg_hold_minutes"] == pytest.approx(90.0)
    assert m["max_consecutive_losses"] == 2
    assert (m["exposure"], m["market_change_pct"], m["start_cash"]) == (0.5, 3.0, CASH)


def test_a_fall_from_the_starting_cash_starts_on_the_first_session() -> None:
    dd = metrics.max_drawdown(100.0, [(date(2024, 3, 1), 95.0), (date(2024, 3, 4), 90.0)])
    assert (dd.pct, dd.usd, dd.start, dd.end) == (10.0, 10.0, date(2024, 3, 1), date(2024, 3, 4))


def test_what_cannot_be_computed_is_none_not_infinite() -> None:
    rising = [(date(2024, 3, 1), 101.0), (date(2024, 3, 4), 102.0)]
    m = metrics.metrics(CASH, rising, [], exposure=0.0, market_change=None)
    assert m["sortino"] is None  # no losing session
    assert m["calmar"] is None and m["max_drawdown_pct"] == 0.0
    assert m["max_drawdown_start"] is None and m["max_drawdown_end"] is None
    assert m["trades"] == 0 and m["max_consecutive_losses"] == 0
    for key in ("profit_factor", "expectancy_usd", "sqn", "win_rate", "best_trade_usd"):
        assert m[key] is None
    empty = metrics.metrics(CASH, [], [], exposure=0.0, market_change=None)
    assert empty["end_equity"] == CASH and empty["sharpe"] is None and empty["cagr_pct"] is None


def test_monthly_returns_chain_month_ends() -> None:
    monthly = metrics.monthly_returns(CASH, DAYS)
    assert monthly == pytest.approx({"2024-01": -1.0, "2024-02": (101.871 / 99 - 1) * 100})


def test_underwater_and_market_change() -> None:
    assert metrics.underwater_pct(CASH, [110, 99, 121]) == pytest.approx([0, -10, 0])
    assert metrics.market_change_pct([(10, 12), (50, 45)]) == pytest.approx(5.0)
    assert metrics.market_change_pct([]) is None


def test_against_empyrical() -> None:
    empyrical = pytest.importorskip("empyrical")
    pd = pytest.importorskip("pandas")
    days = [date(2024, 1, 2) + timedelta(days=i) for i in range(60)]
    values, value = [], CASH
    for i in range(60):  # a deterministic wiggle with drawdowns
        value *= 1 + 0.01 * math.sin(i * 0.7) + 0.003 * math.cos(i * 2.3)
        values.append(value)
    m = metrics.metrics(CASH, list(zip(days, values, strict=True)), [], 0.0, None)
    returns = pd.Series(metrics.daily_returns(CASH, values))
    assert m["sharpe"] == pytest.approx(empyrical.sharpe_ratio(returns, annualization=252))
    assert m["sortino"] == pytest.approx(empyrical.sortino_ratio(returns, annualization=252))
    assert -m["max_drawdown_pct"] / 100 == pytest.approx(empyrical.max_drawdown(returns))
    assert m["cagr_pct"] / 100 == pytest.approx(empyrical.annual_return(returns, annualization=252))
