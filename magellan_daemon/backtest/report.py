"""What a backtest leaves behind, read from its ledger: ``trades.csv`` (one row per fill) and
``summary.json`` (per strategy and for the whole run), and the table printed at the end.

P&L is the ledger's realised P&L (closed trades, fills at the exchange's prices);
``total_pnl``, ``pnl_per_day`` and ``max_drawdown`` are of realised P&L, marked at each exit.
``metrics`` and ``equity_per_day`` are of mark-to-market equity at each session's close
(``marks``: open positions at the last bar's close), computed by ``metrics``. Exposure is
the share of a strategy's steps (the instants it was driven at) at which it held shares.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from magellan_daemon.backtest import marks as marking
from magellan_daemon.backtest import metrics
from magellan_daemon.backtest.marks import CloseMark
from magellan_daemon.backtest.run import RunStats
from magellan_daemon.ledger.store import Ledger
from magellan_daemon.timefmt import NEW_YORK, parse_iso
from magellan_sim.market.market import MarketData
from strategies.api.model import PROTECTIVE_STOP_LEG

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


def _exposure(ledger: Ledger, strategy: str | None, steps: list[datetime]) -> float:
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


def exit_reason_kind(leg: str, reason: str) -> str:
    """The kind of an exit, for ``by_exit_reason``: the protective stop order, else the
    strategy's reason up to its first colon (``exit``, ``eod``, ``time stop``, ``tp1``...)."""
    if leg == PROTECTIVE_STOP_LEG:
        return "protective stop"
    kind = reason.split(":", 1)[0].strip()
    return kind or "unknown"


def round_trips(ledger: Ledger, strategy: str | None = None) -> list[metrics.Trade]:
    """The closed trades of ``strategy`` (None: all), each with the kind of its exit (the
    order of the fill that closed it)."""
    exits: dict[tuple[str, str, str], str] = {}
    for fill in ledger.fills(strategy):
        order = ledger.order(fill["client_order_id"])
        leg, reason = ("", "") if order is None else (order.leg, "")
        if order is not None and order.intent_id is not None:
            intent = ledger.intent(order.intent_id)
            reason = "" if intent is None else intent.intent.reason
        exits[(fill["strategy"], fill["symbol"], fill["ts"])] = exit_reason_kind(leg, reason)
    return [
        metrics.Trade(
            symbol=t["symbol"],
            pnl=float(t["pnl"]),
            entry_time=parse_iso(t["entry_time"]),
            exit_time=parse_iso(t["exit_time"]),
            exit_reason=exits.get((t["strategy"], t["symbol"], t["exit_time"]), "unknown"),
            strategy=t["strategy"],
        )
        for t in ledger.closed_trades(strategy)
    ]


def price_span(
    market: MarketData, symbol: str, first_open: datetime, last_close: datetime
) -> tuple[float, float] | None:
    """``symbol``'s price before the range (the last bar completed at its first session's
    open, else the open of its first bar in the range) and at its last session's close."""
    series = market.price_series(symbol)
    last = market.latest_bar(symbol, last_close)
    if series is None or last is None:
        return None
    before = market.latest_bar(symbol, first_open)
    if before is not None:
        return before.close, last.close
    midnight = datetime.combine(first_open.astimezone(NEW_YORK).date(), datetime.min.time())
    inside = series.index_range(midnight.replace(tzinfo=NEW_YORK), last_close, last_close)
    return (series.bar(inside.start).open, last.close) if len(inside) else None


def performance(
    *,
    start_cash: float,
    equity_per_day: list[tuple[date, float]],
    trades: list[metrics.Trade],
    exposure: float,
    market_change: float | None,
) -> dict[str, Any]:
    """``metrics``, ``equity_per_day``, ``by_symbol`` and ``by_exit_reason`` of one series."""
    by_symbol: dict[str, list[metrics.Trade]] = defaultdict(list)
    by_reason: dict[str, list[metrics.Trade]] = defaultdict(list)
    for t in trades:
        by_symbol[t.symbol].append(t)
        by_reason[t.exit_reason].append(t)
    return {
        "metrics": metrics.metrics(start_cash, equity_per_day, trades, exposure, market_change),
        "equity_per_day": {day.isoformat(): value for day, value in equity_per_day},
        "by_symbol": {k: metrics.trade_stats(v) for k, v in sorted(by_symbol.items())},
        "by_exit_reason": {k: metrics.trade_stats(v) for k, v in sorted(by_reason.items())},
    }


def _market_change(
    market: MarketData, symbols: set[str], marks: list[CloseMark], opens: datetime | None
) -> float | None:
    if not marks or opens is None:
        return None
    spans = (price_span(market, s, opens, marks[-1].close) for s in sorted(symbols))
    return metrics.market_change_pct(span for span in spans if span is not None)


def _equity(
    marks: list[CloseMark], ledger: Ledger, cash: float, strategy: str | None
) -> list[tuple[date, float]]:
    # Rounded to cents first, so that the file's figures recompute exactly from the file.
    return [(d, round(v, 2)) for d, v in marking.equity(marks, ledger, cash, strategy)]


def summarise(
    ledger: Ledger,
    stats: RunStats,
    *,
    start_cash: float,
    marks: list[CloseMark],
    market: MarketData,
    first_open: datetime | None,
) -> dict[str, Any]:
    """``summary.json``'s content: per strategy, then the run."""
    out: dict[str, Any] = {}
    all_trades: list[metrics.Trade] = []
    for name, bars in stats.bars.items():
        trades = ledger.closed_trades(name)
        pnl = [Decimal(t["pnl"]) for t in trades]
        per_day: dict[str, Decimal] = defaultdict(Decimal)
        for t in trades:
            per_day[t["session_date"]] += Decimal(t["pnl"])
        curve = realised_curve(ledger, name)
        exposure = _exposure(ledger, name, stats.step_times[name])
        trips = round_trips(ledger, name)
        all_trades += trips
        symbols = {f["symbol"] for f in ledger.fills(name)}
        out[name] = {
            "trades": len(trades),
            "win_rate": (sum(1 for p in pnl if p > 0) / len(pnl)) if pnl else None,
            "total_pnl": float(sum(pnl, Decimal(0))),
            "pnl_per_day": {day: float(v) for day, v in sorted(per_day.items())},
            "max_drawdown": _max_drawdown(curve),
            "exposure": exposure,
            "bars_processed": bars,
            "warmup_bars": stats.warmup_bars.get(name, 0),
            "bars_per_second": bars / stats.seconds if stats.seconds > 0 else None,
            **performance(
                start_cash=start_cash,
                equity_per_day=_equity(marks, ledger, start_cash, name),
                trades=trips,
                exposure=exposure,
                market_change=_market_change(market, symbols, marks, first_open),
            ),
        }
    steps = sorted({t for times in stats.step_times.values() for t in times})
    run = performance(
        start_cash=start_cash,
        equity_per_day=_equity(marks, ledger, start_cash, None),
        trades=sorted(all_trades, key=lambda t: t.exit_time),
        exposure=_exposure(ledger, None, steps),
        market_change=_market_change(
            market, {f["symbol"] for f in ledger.fills()}, marks, first_open
        ),
    )
    run.update({"seconds": stats.seconds, "steps": stats.steps, "fills": len(ledger.fills())})
    return {"strategies": out, "run": run}


def write_summary(path: Path, summary: dict[str, Any]) -> None:
    """``summary.json``, indented."""
    path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
