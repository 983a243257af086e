"""``report.html``: the backtest's tearsheet in one self-contained file (inline CSS, charts
as ``data:`` PNGs; no script, nothing fetched), readable offline: the metrics table, the
mark-to-market equity with its drawdown panel, monthly returns, the per-symbol and
per-exit-reason tables, and the trades."""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from magellan_daemon.backtest import metrics

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #f0f0f0; }
.pos { color: #166534; } .neg { color: #b91c1c; }
img { max-width: 100%; }
"""
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
PERCENT = {"total_return_pct", "cagr_pct", "max_drawdown_pct", "market_change_pct"}
SHARE = {"win_rate", "exposure"}
STATS_COLUMNS = (
    "trades",
    "pnl_usd",
    "win_rate",
    "profit_factor",
    "expectancy_usd",
    "best_trade_usd",
    "worst_trade_usd",
    "avg_hold_minutes",
    "max_consecutive_losses",
)


def fmt(key: str, value: Any) -> str:
    """A figure as the tables show it (``-`` for none)."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if key in SHARE:
        return f"{100 * value:.1f}%"
    if key in PERCENT:
        return f"{value:,.2f}%"
    if isinstance(value, int):
        return f"{value:,}"
    if key.endswith("_usd") or key in ("start_cash", "end_equity"):
        return f"{value:,.2f}"
    return f"{value:,.2f}"


def _cell(key: str, value: Any) -> str:
    text = html.escape(fmt(key, value))
    signed = key.endswith(("_pct", "_usd")) and isinstance(value, int | float)
    if signed and key.startswith("max_drawdown"):
        value = -value  # a drawdown is a loss
    cls = "" if not signed or value == 0 else (' class="pos"' if value > 0 else ' class="neg"')
    return f"<td{cls}>{text}</td>"


def _table(head: Sequence[str], rows: Iterable[str]) -> str:
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def metrics_table(summary: dict[str, Any]) -> str:
    """One row per metric; a column for the run and one per strategy."""
    names = list(summary["strategies"])
    columns = [summary["run"]["metrics"]] + [summary["strategies"][n]["metrics"] for n in names]
    rows = (
        f"<tr><td>{key}</td>{''.join(_cell(key, c[key]) for c in columns)}</tr>"
        for key in metrics.METRIC_KEYS
    )
    return _table(["metric", "run", *names], rows)


def stats_table(first: str, table: dict[str, dict[str, Any]]) -> str:
    """``by_symbol`` / ``by_exit_reason``: a row per key."""
    rows = (
        f"<tr><td>{html.escape(k)}</td>{''.join(_cell(c, v[c]) for c in STATS_COLUMNS)}</tr>"
        for k, v in table.items()
    )
    return _table([first, *STATS_COLUMNS], rows)


def monthly_table(start_cash: float, equity_per_day: list[tuple[date, float]]) -> str:
    """Monthly returns (percent), a row per year."""
    monthly = metrics.monthly_returns(start_cash, equity_per_day)
    years = sorted({int(m[:4]) for m in monthly})
    rows = []
    for year in years:
        months = [monthly.get(f"{year:04d}-{month:02d}") for month in range(1, 13)]
        growth = math.prod(1 + m / 100 for m in months if m is not None)
        cells = [_cell("month_pct", m) for m in months] + [_cell("year_pct", (growth - 1) * 100)]
        rows.append(f"<tr><td>{year}</td>{''.join(cells)}</tr>")
    return _table(["year", *MONTHS, "year"], rows)


def trades_table(trades: Sequence[metrics.Trade]) -> str:
    """Every closed trade, by exit time."""
    rows = (
        "<tr>"
        f"<td>{html.escape(t.strategy)}</td><td>{html.escape(t.symbol)}</td>"
        f"<td>{t.entry_time:%Y-%m-%d %H:%M}Z</td><td>{t.exit_time:%Y-%m-%d %H:%M}Z</td>"
        f"{_cell('hold', (t.exit_time - t.entry_time).total_seconds() / 60)}"
        f"{_cell('pnl_usd', t.pnl)}<td>{html.escape(t.exit_reason)}</td>"
        "</tr>"
        for t in sorted(trades, key=lambda t: t.exit_time)
    )
    head = ["strategy", "symbol", "entry (UTC)", "exit (UTC)", "hold min", "P&L", "exit"]
    return _table(head, rows)


def render(
    summary: dict[str, Any], trades: Sequence[metrics.Trade], title: str, equity_png: bytes
) -> str:
    """The whole page; ``equity_png`` is the equity chart (``charts.equity_chart``)."""
    run = summary["run"]
    cash = run["metrics"]["start_cash"]
    days = [(date.fromisoformat(d), v) for d, v in run["equity_per_day"].items()]
    chart = base64.b64encode(equity_png).decode("ascii")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        "<h2>Metrics</h2>",
        metrics_table(summary),
        "<h2>Equity and drawdown</h2>",
        f'<img alt="mark-to-market equity and drawdown" src="data:image/png;base64,{chart}">',
        "<h2>Monthly returns (%)</h2>",
        monthly_table(cash, days),
        "<h2>By symbol</h2>",
        stats_table("symbol", run["by_symbol"]),
        "<h2>By exit reason</h2>",
        stats_table("exit", run["by_exit_reason"]),
    ]
    for name, s in summary["strategies"].items():
        parts += [
            f"<h3>{html.escape(name)}: by symbol</h3>",
            stats_table("symbol", s["by_symbol"]),
            f"<h3>{html.escape(name)}: by exit reason</h3>",
            stats_table("exit", s["by_exit_reason"]),
        ]
    parts += [f"<h2>Trades ({len(trades)})</h2>", trades_table(trades), "</body></html>"]
    return "\n".join(parts) + "\n"


def write(
    path: Path,
    summary: dict[str, Any],
    trades: Sequence[metrics.Trade],
    title: str,
    equity_png: bytes,
) -> None:
    """``report.html``."""
    path.write_text(render(summary, trades, title, equity_png), encoding="utf-8")
