"""``magellan backtest`` end to end on real bars (the daemon's router, order path, ledger and
the simulator's exchange core in one process): its outputs and their columns, its decisions
against ``magellan signals`` on the same bars, and the order path at work (Hourly Swing's
rule on 1Min bars, 100 shares an entry, trades often)."""

from __future__ import annotations

import csv
import gzip
import json
import re
import shutil
from pathlib import Path

import pytest

from magellan_daemon.backtest.report import TRADES_COLUMNS
from magellan_daemon.cli.backtest import print_metrics
from magellan_daemon.cli.main import main
from tests.conftest import REPO

pytestmark = pytest.mark.timeout(240)
CRASH_DAY = "2024-11-15"  # MULN fell 15% and set a trap (crash_days.csv)
BENCH_CONFIG = REPO / "bench" / "configs" / "magellan.toml"


@pytest.fixture(scope="module")
def muln_bars(bars_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bars directory with MULN's minute file alone (a fast run)."""
    root = tmp_path_factory.mktemp("bars")
    (root / "1Min").mkdir()
    shutil.copy(bars_dir / "1Min" / "MULN.csv.gz", root / "1Min" / "MULN.csv.gz")
    return root


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _backtest(bars: Path, out: Path, strategy: str, config: Path, start: str, end: str) -> None:
    argv = ["backtest", "--bars", str(bars), "--start", start, "--end", end]
    argv += ["--strategy", strategy, "--config", str(config), "--out", str(out), "--quiet"]
    assert main(argv) == 0


def _signals(bars: Path, out: Path, strategy: str, config: Path, start: str, end: str) -> None:
    argv = ["signals", "--strategy", strategy, "--bars", str(bars), "--start", start]
    assert main([*argv, "--end", end, "--config", str(config), "--out", str(out)]) == 0


def test_bear_trap_on_the_crash_day(muln_bars: Path, tmp_path: Path) -> None:
    config = REPO / "configs" / "magellan.toml"
    _backtest(muln_bars, tmp_path / "bt", "bear_trap", config, CRASH_DAY, CRASH_DAY)
    _signals(muln_bars, tmp_path / "signals.csv", "bear_trap", config, CRASH_DAY, CRASH_DAY)
    out = tmp_path / "bt"
    with (out / "trades.csv").open() as handle:
        assert next(csv.reader(handle)) == list(TRADES_COLUMNS)
    trades = _rows(out / "trades.csv")
    buys = [(t["symbol"], t["signal_time"], t["reason"]) for t in trades if t["side"] == "buy"]
    entries = [
        (s["symbol"], s["signal_time"], s["reason"])
        for s in _rows(tmp_path / "signals.csv")
        if s["action"] == "enter"
    ]
    assert buys == entries and buys  # the same entry, same bar, same reason
    for t in trades:
        assert t["filled_at"] > t["signal_time"]  # filled after the signal bar completed
        assert t["filled_at"].endswith("Z") and t["signal_time"].endswith("Z")
    sold = sum(int(t["qty"]) for t in trades if t["side"] == "sell")
    assert sold == sum(int(t["qty"]) for t in trades if t["side"] == "buy")  # flat by the close
    summary = json.loads((out / "summary.json").read_text())["strategies"]["bear_trap"]
    assert summary["trades"] >= 1 and summary["bars_processed"] > 300
    assert set(summary) >= {
        "trades",
        "win_rate",
        "total_pnl",
        "pnl_per_day",
        "max_drawdown",
        "exposure",
        "bars_processed",
        "bars_per_second",
    }
    assert list(summary["pnl_per_day"]) == [CRASH_DAY]
    assert 0 < summary["exposure"] < 1
    for chart in ("equity.png", "pnl_by_strategy.png"):
        assert (out / chart).read_bytes().startswith(b"\x89PNG")


def test_hourly_swing_rule_on_minute_bars_trades_through_the_order_path(
    muln_bars: Path, tmp_path: Path
) -> None:
    start, end = "2024-11-12", "2024-11-13"
    _backtest(muln_bars, tmp_path / "bt", "hourly_swing", BENCH_CONFIG, start, end)
    _signals(muln_bars, tmp_path / "signals.csv", "hourly_swing", BENCH_CONFIG, start, end)
    trades = _rows(tmp_path / "bt" / "trades.csv")
    assert len(trades) > 20
    assert {t["qty"] for t in trades} == {"100"}  # entry_shares, and each exit sells them all
    decided = [
        (s["signal_time"], "buy" if s["action"] == "enter" else "sell")
        for s in _rows(tmp_path / "signals.csv")
    ]
    # Both fill a market order at the open of the bar after the signal, so they decide alike;
    # the backtest's last decision may still wait for its fill at the end of the window.
    done = [(t["signal_time"], t["side"]) for t in trades]
    assert done == decided[: len(done)] and len(decided) - len(done) <= 1


def test_the_backtest_waits_for_the_brokers_cancel_as_the_daemon_does(
    muln_bars: Path, tmp_path: Path
) -> None:
    """The exchange confirms a cancel after its latency (2 s), as in the daemon's tests: a
    time-stop exit decided at the 18:47 tick cancels the resting stop first, is sent at
    18:47:02 once the cancel is confirmed, and fills with the 18:48 bar. An exchange that
    cancelled at once would have filled it with the 18:47 bar."""
    configs = tmp_path / "configs"
    shutil.copytree(REPO / "configs", configs)
    params = configs / "bear_trap.toml"
    text = params.read_text().replace("stop_atr_multiple = 0.45", "stop_atr_multiple = 1.5")
    params.write_text(text.replace("time_stop_minutes = 30", "time_stop_minutes = 1"))
    _backtest(
        muln_bars, tmp_path / "bt", "bear_trap", configs / "magellan.toml", CRASH_DAY, CRASH_DAY
    )
    [exit_] = [t for t in _rows(tmp_path / "bt" / "trades.csv") if t["side"] == "sell"]
    assert exit_["reason"].startswith("time stop")
    assert exit_["filled_at"] == "2024-11-15T18:49:00Z"


METRIC_KEYS = {
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
}


def _sharpe(cash: float, equity: list[float]) -> float:
    """The README's definition: r_t = E_t / E_{t-1} - 1 from E_0 = the starting cash;
    mean / stdev (ddof 1) * sqrt(252)."""
    previous, returns = cash, []
    for value in equity:
        returns.append(value / previous - 1)
        previous = value
    mean = sum(returns) / len(returns)
    sd = (sum((r - mean) ** 2 for r in returns) / (len(returns) - 1)) ** 0.5
    return mean / sd * 252**0.5


def _max_drawdown_pct(cash: float, equity: list[float]) -> float:
    peak, worst = cash, 0.0
    for value in equity:
        peak = max(peak, value)
        worst = max(worst, (peak - value) / peak * 100)
    return worst


def _daily_closes(bars: Path, symbol: str) -> dict[str, float]:
    with gzip.open(bars / "1Day" / f"{symbol}.csv.gz", "rt", newline="") as handle:
        return {r["timestamp"][:10]: float(r["close"]) for r in csv.DictReader(handle)}


def _marked_to_market(
    cash: float, fills: list[dict[str, str]], bars: Path, days: list[str]
) -> dict[str, float]:
    """Equity at each day's close from trades.csv and the daily bars alone (regular-hours
    fills: the UTC date is the New York date)."""
    closes = {f["symbol"]: _daily_closes(bars, f["symbol"]) for f in fills}
    held: dict[str, tuple[int, float]] = {}
    realised, i, out = 0.0, 0, {}
    for day in sorted(days):
        while i < len(fills) and fills[i]["filled_at"][:10] <= day:
            f = fills[i]
            qty, avg = held.get(f["symbol"], (0, 0.0))
            n, price = int(f["qty"]), float(f["price"])
            if f["side"] == "buy":
                held[f["symbol"]] = (qty + n, (qty * avg + n * price) / (qty + n))
            else:
                realised += n * (price - avg)
                held[f["symbol"]] = (qty - n, avg if qty > n else 0.0)
            i += 1
        open_pnl = sum(q * (closes[s][day] - a) for s, (q, a) in held.items() if q)
        out[day] = cash + realised + open_pnl
    return out


def test_the_report_a_trader_can_act_on(
    bars_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Daily Trend on the shared daily bars for four months: the metrics of the run and of
    the strategy, an equity per session marked to market (open positions at the last
    bar's close), whose Sharpe and max drawdown recompute from the file, and a
    self-contained report.html."""
    daily = tmp_path / "bars"
    shutil.copytree(bars_dir / "1Day", daily / "1Day")
    start, end = "2024-02-01", "2024-05-31"
    config = REPO / "configs" / "magellan.toml"
    _backtest(daily, tmp_path / "bt", "daily_trend", config, start, end)
    out = tmp_path / "bt"
    summary = json.loads((out / "summary.json").read_text())
    cash = 100_000.0
    for part in (summary["run"], summary["strategies"]["daily_trend"]):
        m = part["metrics"]
        assert set(m) == METRIC_KEYS
        days = part["equity_per_day"]
        # Every New York session of the range, and only those: 84 (Good Friday is shut).
        assert len(days) == 84 and min(days) == "2024-02-01" and max(days) == "2024-05-31"
        equity = [days[d] for d in sorted(days)]
        assert m["sharpe"] == pytest.approx(_sharpe(cash, equity), rel=1e-9)
        assert m["max_drawdown_pct"] == pytest.approx(_max_drawdown_pct(cash, equity), rel=1e-9)
        assert m["max_drawdown_pct"] > 0 and m["max_drawdown_start"] < m["max_drawdown_end"]
        assert m["end_equity"] == equity[-1] and m["start_cash"] == cash
        assert m["trades"] >= 3 and 0 < m["exposure"] <= 1
        assert set(part["by_symbol"]) and set(part["by_exit_reason"]) == {"exit"}
        assert sum(s["trades"] for s in part["by_symbol"].values()) == m["trades"]
    # Marked to market: each session's equity is the cash, the P&L realised by the fills of
    # that day and before (average cost), and what is held after them at that day's close.
    marked = _marked_to_market(cash, _rows(out / "trades.csv"), daily, list(days))
    assert marked == pytest.approx(summary["run"]["equity_per_day"], abs=0.02)
    assert (
        summary["strategies"]["daily_trend"]["equity_per_day"] == summary["run"]["equity_per_day"]
    )
    page = (out / "report.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.IGNORECASE)
    assert "<script" not in page and "<link" not in page
    assert "<td>sharpe</td>" in page and "<td>max_drawdown_pct</td>" in page
    assert 'src="data:image/png;base64,' in page
    assert (out / "equity.png").read_bytes().startswith(b"\x89PNG")
    capsys.readouterr()
    print_metrics(summary)  # what the command prints at the end without --quiet
    printed = capsys.readouterr().out
    run = summary["run"]["metrics"]
    for key in ("sharpe", "sortino", "cagr_pct", "max_drawdown_pct", "profit_factor"):
        assert key in printed
    assert f"{run['sharpe']:,.2f}" in printed and f"{run['max_drawdown_pct']:,.2f}%" in printed
