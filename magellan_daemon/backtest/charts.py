"""The backtest's charts (matplotlib, no display): the run's mark-to-market equity with its
drawdown panel, and each strategy's cumulative realised P&L."""

from __future__ import annotations

import io
from datetime import date, datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: never a window, works without a display

import matplotlib.pyplot as plt  # after choosing the backend
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from magellan_daemon.backtest import metrics


def equity_figure(cash: float, days: list[date], equity: list[float]) -> Figure:
    """Mark-to-market equity at each session's close, with the drawdown (underwater) panel
    under it; plain dollars on the axis (no offset notation however large the cash)."""
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(10, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    top.plot(days, equity, color="tab:blue", drawstyle="steps-post")
    top.axhline(cash, color="grey", linewidth=0.8)
    top.set_title("Mark-to-market equity at each session's close")
    top.set_ylabel("USD")
    top.ticklabel_format(axis="y", useOffset=False, style="plain")
    top.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    under = metrics.underwater_pct(cash, equity)
    bottom.fill_between(days, under, 0, color="tab:red", alpha=0.4, step="post")
    bottom.set_ylabel("drawdown %")
    bottom.ticklabel_format(axis="y", useOffset=False, style="plain")
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def equity_chart(path: Path, cash: float, equity_per_day: list[tuple[date, float]]) -> bytes:
    """``equity.png``: ``equity_figure`` of the whole run; returns the PNG, which
    ``report.html`` embeds too (one figure drawn once: it is most of the reports' time)."""
    fig = equity_figure(cash, [d for d, _ in equity_per_day], [v for _, v in equity_per_day])
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    png = buffer.getvalue()
    path.write_bytes(png)
    return png


def pnl_chart(path: Path, curves: dict[str, list[tuple[datetime, float]]]) -> None:
    """``pnl_by_strategy.png``: one cumulative realised P&L line per strategy."""
    fig, ax = plt.subplots(figsize=(10, 4))
    for name, curve in sorted(curves.items()):
        if curve:
            ax.step([t for t, _ in curve], [v for _, v in curve], where="post", label=name)
        else:
            ax.plot([], [], label=f"{name} (no trades)")
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_title("Cumulative realised P&L by strategy")
    ax.set_ylabel("USD")
    ax.legend()
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
