"""The backtest's charts (matplotlib, no display): the account's realised equity and each
strategy's cumulative realised P&L."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: never a window, works without a display

import matplotlib.pyplot as plt  # after choosing the backend


def equity_chart(path: Path, cash: float, curves: dict[str, list[tuple[datetime, float]]]) -> None:
    """``equity.png``: starting cash plus every strategy's realised P&L, by exit time."""
    events = sorted((t, name, v) for name, curve in curves.items() for t, v in curve)
    last = dict.fromkeys(curves, 0.0)
    times, equity = [], []
    for t, name, value in events:
        last[name] = value
        times.append(t)
        equity.append(cash + sum(last.values()))
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.step(times, equity, where="post", color="tab:blue")
    ax.axhline(cash, color="grey", linewidth=0.8)
    ax.set_title("Realised equity")
    ax.set_ylabel("USD")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


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
