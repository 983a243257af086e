"""What a backtest leaves behind, read from its ledger: ``trades.csv`` (one row per fill) and
``summary.json`` (per strategy), and the table printed at the end.

P&L is the ledger's realised P&L (closed trades, fills at the exchange's prices); the
equity curve and the drawdown are of realised P&L, marked at each exit. Exposure is the
share of a strategy's steps (the instants it was driven at) at which it held shares.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from magellan_daemon.backtest.run import RunStats
from magellan_daemon.ledger.store import Ledger
from magellan_daemon.timefmt import parse_iso

TRADES_COLUMNS = (
    "strategy",
    "symbol",
    "side",
    "qty",
    "price",
    "signal_time",
    "filled_at",
    "reason",
)


def _utc(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def trade_rows(ledger: Ledger) -> list[tuple[str, ...]]:
    """Every fill with the signal that caused it, oldest first."""
    rows = []
    for fill in ledger.fills():
        order = ledger.order(fill["client_order_id"])
        intent = (
            None if order is None or order.intent_id is None else ledger.intent(order.intent_id)
        )
        rows.append(
            (
                fill["strategy"],
                fill["symbol"],
                fill["side"],
                str(fill["qty"]),
                str(fill["price"]),
                "" if order is None else _utc(order.signal_time),
                _utc(parse_iso(fill["ts"])),
                "" if intent is None else intent.intent.reason,
            )
        )
    return rows


def write_trades(path: Path, rows: list[tuple[str, ...]]) -> None:
    """``trades.csv`` with ``TRADES_COLUMNS``."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(TRADES_COLUMNS)
        writer.writerows(rows)


def realised_curve(ledger: Ledger, strategy: str) -> list[tuple[datetime, float]]:
    """(exit time, cumulative realised P&L) after each closed trade of ``strategy``."""
    total, curve = Decimal(0), []
    for trade in ledger.closed_trades(strategy):
        total += Decimal(trade["pnl"])
        curve.append((parse_iso(trade["exit_time"]), float(total)))
    return curve


def _exposure(ledger: Ledger, strategy: str, steps: list[datetime]) -> float:
    """Share of ``steps`` at which the strategy held shares (from its fills)."""
    if not steps:
        return 0.0
    fills = ledger.fills(strategy)
    held: dict[str, Decimal] = defaultdict(Decimal)
    i, holding, count = 0, 0, 0
    for at in steps:
        while i < len(fills) and parse_iso(fills[i]["ts"]) <= at:
            f = fills[i]
            qty = Decimal(f["qty"])
            held[f["symbol"]] += qty if f["side"] == "buy" else -qty
            holding = sum(1 for q in held.values() if q > 0)
            i += 1
        count += holding > 0
    return count / len(steps)


def _max_drawdown(curve: list[tuple[datetime, float]]) -> float:
    peak, worst = 0.0, 0.0
    for _, value in curve:
        peak = max(peak, value)
        worst = max(worst, peak - value)
    return worst


def summarise(ledger: Ledger, stats: RunStats) -> dict[str, Any]:
    """``summary.json``'s content: per strategy, then the run."""
    out: dict[str, Any] = {}
    for name, bars in stats.bars.items():
        trades = ledger.closed_trades(name)
        pnl = [Decimal(t["pnl"]) for t in trades]
        per_day: dict[str, Decimal] = defaultdict(Decimal)
        for t in trades:
            per_day[t["session_date"]] += Decimal(t["pnl"])
        curve = realised_curve(ledger, name)
        out[name] = {
            "trades": len(trades),
            "win_rate": (sum(1 for p in pnl if p > 0) / len(pnl)) if pnl else None,
            "total_pnl": float(sum(pnl, Decimal(0))),
            "pnl_per_day": {day: float(v) for day, v in sorted(per_day.items())},
            "max_drawdown": _max_drawdown(curve),
            "exposure": _exposure(ledger, name, stats.step_times[name]),
            "bars_processed": bars,
            "warmup_bars": stats.warmup_bars.get(name, 0),
            "bars_per_second": bars / stats.seconds if stats.seconds > 0 else None,
        }
    return {
        "strategies": out,
        "run": {"seconds": stats.seconds, "steps": stats.steps, "fills": len(ledger.fills())},
    }


def write_summary(path: Path, summary: dict[str, Any]) -> None:
    """``summary.json``, indented."""
    path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
