"""``magellan trades [--strategy S] [--since DATE]``: the ledger's fills and round trips as
aligned tables, New York times, totals at the bottom."""

from __future__ import annotations

import argparse
from datetime import date
from decimal import Decimal
from typing import Any

from magellan_daemon.cli.ops.common import (
    EXIT_OK,
    add_common_arguments,
    et,
    fail,
    load_context,
    money_text,
    price_text,
    qty_text,
    run_guarded,
)
from magellan_daemon.cli.ops.tables import table
from magellan_daemon.ledger.store import Ledger
from magellan_daemon.timefmt import parse_iso, session_date

ZERO = Decimal(0)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the command's arguments."""
    parser.add_argument("--strategy", default=None, help="one strategy only")
    parser.add_argument(
        "--since",
        type=date.fromisoformat,
        default=None,
        help="first New York date to show (YYYY-MM-DD)",
    )
    add_common_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Print the tables; exit 1 when there is no ledger, 2 for an unknown strategy."""
    return run_guarded("trades", _trades, args)


def _trades(args: argparse.Namespace) -> int:
    ctx = load_context(args)
    strategy = None if args.strategy is None else ctx.check_strategy(args.strategy)
    if not ctx.ledger_path.exists():
        return fail("trades", f"no ledger at {ctx.ledger_path} (has the daemon run?)", 1)
    ledger = Ledger.open(ctx.ledger_path)
    try:
        fills = [f for f in ledger.fills(strategy) if _since(f["ts"], args.since)]
        trips = [t for t in ledger.closed_trades(strategy) if _since(t["exit_time"], args.since)]
    finally:
        ledger.close()
    print("\n".join(render(fills, trips)))
    return EXIT_OK


def _since(ts: str, since: date | None) -> bool:
    return since is None or session_date(parse_iso(ts)) >= since


def render(fills: list[dict[str, Any]], trips: list[dict[str, Any]]) -> list[str]:
    """Both tables and the totals."""
    return [
        f"fills ({len(fills)})",
        *(_fills_table(fills) if fills else ["  none"]),
        "",
        f"round trips ({len(trips)})",
        *(_trips_table(trips) if trips else ["  none"]),
        "",
        *_totals(fills, trips),
    ]


def _fills_table(fills: list[dict[str, Any]]) -> list[str]:
    rows = [
        [
            et(f["ts"]),
            f["strategy"],
            f["symbol"],
            f["side"],
            qty_text(f["qty"]),
            price_text(f["price"]),
            f["client_order_id"],
        ]
        for f in fills
    ]
    headers = ["time", "strategy", "symbol", "side", "qty", "price", "order id"]
    return table(headers, rows, right={4, 5})


def _trips_table(trips: list[dict[str, Any]]) -> list[str]:
    rows = [
        [
            t["strategy"],
            t["symbol"],
            qty_text(t["qty"]),
            et(t["entry_time"]),
            price_text(t["entry_price"]),
            et(t["exit_time"]),
            price_text(t["exit_price"]),
            money_text(t["pnl"]),
        ]
        for t in trips
    ]
    headers = ["strategy", "symbol", "qty", "entry time", "entry", "exit time", "exit", "P&L"]
    return table(headers, rows, right={2, 4, 6, 7})


def _totals(fills: list[dict[str, Any]], trips: list[dict[str, Any]]) -> list[str]:
    bought = sum((_value(f) for f in fills if f["side"] == "buy"), ZERO)
    sold = sum((_value(f) for f in fills if f["side"] == "sell"), ZERO)
    pnl = sum((Decimal(t["pnl"]) for t in trips), ZERO)
    wins = sum(1 for t in trips if Decimal(t["pnl"]) > 0)
    return [
        f"total: {len(fills)} fills, bought ${bought:,.2f}, sold ${sold:,.2f}",
        f"total: {len(trips)} round trips, {wins} winners, {len(trips) - wins} losers, "
        f"realised P&L {money_text(pnl)}",
    ]


def _value(fill: dict[str, Any]) -> Decimal:
    return Decimal(fill["qty"]) * Decimal(fill["price"])
