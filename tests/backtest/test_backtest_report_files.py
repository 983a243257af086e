"""The report's files on a small series: ``equity.png``'s figure (plain dollars however
large the cash, the drawdown panel under the equity) and ``report.html``'s sections (the
metrics, monthly returns, the per-symbol and per-exit-reason tables, every trade)."""

from __future__ import annotations

import base64
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from magellan_daemon.backtest import charts, html_report, report
from magellan_daemon.backtest.metrics import Trade

CASH = 100_000_000.0  # where matplotlib's default axis would say "+1e8"
DAYS = [
    (date(2024, 1, 30), CASH + 1_000.0),
    (date(2024, 1, 31), CASH - 500.0),
    (date(2024, 2, 1), CASH + 250.0),
    (date(2024, 2, 2), CASH + 1_500.0),
]
# A 100,000 account: January ends at 99,000 (-1 %), February at 101,970 (+3 % over it).
SMALL = [
    (date(2024, 1, 30), 101_000.0),
    (date(2024, 1, 31), 99_000.0),
    (date(2024, 2, 1), 100_000.0),
    (date(2024, 2, 2), 101_970.0),
]
T0 = datetime(2024, 1, 30, 15, 0, tzinfo=UTC)
TRADES = [
    Trade("AAA", 1_000.0, T0, T0 + timedelta(minutes=30), "exit", "daily_trend"),
    Trade("BBB", -1_500.0, T0 + timedelta(days=1), T0 + timedelta(days=1, hours=1), "eod", "x"),
    Trade("AAA", 2_000.0, T0 + timedelta(days=2), T0 + timedelta(days=3), "exit", "daily_trend"),
]


def test_the_equity_figure_has_plain_dollars_and_a_drawdown_panel() -> None:
    fig = charts.equity_figure(CASH, [d for d, _ in DAYS], [v for _, v in DAYS])
    fig.canvas.draw()
    top, bottom = fig.axes
    for ax in (top, bottom):
        assert ax.yaxis.get_offset_text().get_text() == ""  # no "+1e8", no "1e-5"
    labels = [t.get_text() for t in top.get_yticklabels() if t.get_text()]
    assert labels and all(re.fullmatch(r"[\d,]+", text) for text in labels), labels
    assert any(text.startswith("100,00") for text in labels), labels
    assert bottom.get_ylabel() == "drawdown %"
    under = bottom.collections[0].get_paths()[0].vertices[:, 1]
    assert min(under) < 0  # the fall from 100,001,000 to 99,999,500 shows


def test_report_html_has_every_section_and_every_trade(tmp_path: Path) -> None:
    png = charts.equity_chart(tmp_path / "equity.png", 100_000.0, SMALL)
    assert png.startswith(b"\x89PNG") and (tmp_path / "equity.png").read_bytes() == png
    part = report.performance(
        start_cash=100_000.0, equity_per_day=SMALL, trades=TRADES, exposure=0.5, market_change=1.0
    )
    summary = {"run": part, "strategies": {"daily_trend": part}}
    page = html_report.render(summary, TRADES, "a test run", png)
    sections = re.findall(r"<h[23]>([^<]*)</h[23]>", page)
    assert sections[:5] == [
        "Metrics",
        "Equity and drawdown",
        "Monthly returns (%)",
        "By symbol",
        "By exit reason",
    ]
    assert sections[-1] == "Trades (3)"
    assert "<td>calmar</td>" in page and "<td>market_change_pct</td>" in page
    # Monthly returns (%), a row per year, the year compounded: 0.99 * 1.03 = 1.9700 %.
    months = re.search(r"<tr><td>2024</td>(.*?)</tr>", page)
    assert months, page
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", months.group(1))
    assert cells == ["-1.00", "3.00", *["-"] * 10, "1.97"], cells
    assert re.search(r"<tr><td>AAA</td><td>2</td>", page)  # by symbol: AAA's two trades
    assert re.search(r"<tr><td>eod</td><td>1</td>", page)  # by exit reason
    assert page.count("<td>daily_trend</td><td>AAA</td>") == 2  # the trades table
    assert f"data:image/png;base64,{base64.b64encode(png).decode()}" in page  # the same chart
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page)
    assert "<script" not in text and "http" not in text  # nothing fetched
