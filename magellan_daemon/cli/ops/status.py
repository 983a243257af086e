"""``magellan status [--json]``: the daemon, each strategy's positions, intents, orders,
today's P&L and trades, halts, next jobs, last fill and streams."""

from __future__ import annotations

import argparse
from typing import Any

import orjson

from magellan_core.clock import WallClock
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
from magellan_daemon.cli.ops.status_report import build_report
from magellan_daemon.cli.ops.tables import indent, table
from magellan_daemon.ledger.control import ControlChannel
from magellan_daemon.ledger.store import Ledger


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the command's arguments."""
    add_common_arguments(parser)
    parser.add_argument("--json", action="store_true", help="one JSON document (same numbers)")


def run(args: argparse.Namespace) -> int:
    """Print the status; exit 1 when there is no ledger to read."""
    return run_guarded("status", _status, args)


def _status(args: argparse.Namespace) -> int:
    ctx = load_context(args)
    if not ctx.ledger_path.exists():
        return fail("status", f"no ledger at {ctx.ledger_path} (has the daemon run?)", 1)
    ledger = Ledger.open(ctx.ledger_path)
    control = ControlChannel(ctx.ledger_path)
    try:
        report = build_report(ctx.config, ledger, control.read_status(), WallClock().now())
    finally:
        control.close()
        ledger.close()
    if args.json:
        print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    else:
        print("\n".join(render(report)))
    return EXIT_OK


def render(report: dict[str, Any]) -> list[str]:
    """The report as lines for a person."""
    lines = _daemon_lines(report)
    for name, strategy in report["strategies"].items():
        lines += ["", *_strategy_lines(name, strategy)]
    totals = report["totals"]
    lines += [
        "",
        f"total: realised today {money_text(totals['realized_today'])}, "
        f"unrealised {money_text(totals['unrealized_pnl'])}, "
        f"{totals['open_positions']} open positions, "
        f"{totals['pending_intents']} pending intents",
    ]
    return lines


def _daemon_lines(report: dict[str, Any]) -> list[str]:
    daemon = report["daemon"]
    if daemon["running"]:
        ready = "ready" if daemon.get("ready") else "NOT READY"
        head = (
            f"daemon: running, mode {daemon.get('mode')}, pid {daemon.get('pid')}, {ready} "
            f"(snapshot {daemon['age_seconds']} s old); market time {et(daemon['virtual_now'])}"
        )
    elif daemon["last_seen"]:
        head = f"daemon: NOT RUNNING (last seen {et(daemon['last_seen'])})"
    else:
        head = "daemon: NOT RUNNING (never seen)"
    lines = [
        head,
        f"config mode: {report['config_mode']}",
        f"today: {report['day']} (New York date of the {report['day_basis']})",
        f"streams: {_streams(report['streams'])}",
        f"last fill: {et(report['last_fill'])}",
    ]
    guard = daemon.get("guard") or {}
    for what, rows in (
        ("UNPROTECTED (no working stop or exit)", guard.get("unprotected", [])),
        (
            "HELD PAST THE CLOSE (intraday; exits at the next opening auction)",
            guard.get("held_past_close", []),
        ),
    ):
        if rows:
            lines.append(f"{what}:")
            lines += indent([f"{r['strategy']} {r['symbol']} {r['qty']} shares" for r in rows])
    jobs = report["next_jobs"]
    if jobs:
        lines.append("next jobs:")
        lines += indent([f"{et(j['when'])}  {j['name']}" for j in jobs])
    return lines


def _streams(streams: dict[str, bool] | None) -> str:
    if streams is None:
        return "unknown (daemon not running)"
    if not streams:
        return "none"
    return ", ".join(f"{a} {'connected' if ok else 'DISCONNECTED'}" for a, ok in streams.items())


def _strategy_lines(name: str, s: dict[str, Any]) -> list[str]:
    state = "enabled" if s["enabled"] else "disabled"
    if not s["configured"]:
        state = "not in the config"
    halt = s["halted"]
    halted = (
        f"HALTED since {et(halt['since'])} by {halt['source']}: {halt['reason']}"
        if halt
        else "not halted"
    )
    lines = [f"{name} [{state}, account {s['account'] or '-'}] {halted}"]
    lines += indent(_positions(s["positions"]))
    lines += indent(_pending(s["pending_intents"]))
    lines += indent(_orders(s["open_orders"]))
    lines += indent(_today(s))
    return lines


def _positions(positions: list[dict[str, Any]]) -> list[str]:
    if not positions:
        return ["positions: none"]
    rows = [
        [
            p["symbol"],
            qty_text(p["qty"]),
            price_text(p["entry_price"]),
            price_text(p["last_price"]),
            money_text(p["unrealized_pnl"]),
            et(p["opened_at"]),
        ]
        for p in positions
    ]
    headers = ["symbol", "qty", "entry", "last", "unrealised", "opened"]
    return ["positions:", *indent(table(headers, rows, right={1, 2, 3, 4}))]


def _pending(intents: list[dict[str, Any]]) -> list[str]:
    if not intents:
        return ["pending intents: none"]
    rows = [
        [i["symbol"], i["action"], i["leg"], et(i["signal_time"]), et(i["not_before"]), i["reason"]]
        for i in intents
    ]
    headers = ["symbol", "action", "leg", "signal", "not before", "reason"]
    return ["pending intents:", *indent(table(headers, rows, right=set()))]


def _orders(orders: list[dict[str, Any]]) -> list[str]:
    if not orders:
        return ["open orders: none"]
    rows = [
        [
            o["symbol"],
            o["side"],
            o["type"],
            qty_text(o["qty"]),
            qty_text(o["filled_qty"]),
            price_text(o["stop_price"]) if o["stop_price"] else "",
            o["status"],
            o["client_order_id"],
        ]
        for o in orders
    ]
    headers = ["symbol", "side", "type", "qty", "filled", "stop", "status", "client_order_id"]
    return ["open orders:", *indent(table(headers, rows, right={3, 4, 5}))]


def _today(s: dict[str, Any]) -> list[str]:
    entries, trips = s["entries_today"], s["round_trips_today"]
    lines = [
        f"today: realised {money_text(s['realized_today'])}, {len(entries)} entries, "
        f"{len(trips)} round trips"
    ]
    if entries:
        rows = [
            [
                et(e["time"]),
                e["symbol"],
                qty_text(e["qty"]),
                price_text(e["price"]),
                e["client_order_id"],
            ]
            for e in entries
        ]
        lines += indent(
            table(["entry time", "symbol", "qty", "price", "client_order_id"], rows, right={2, 3})
        )
    if trips:
        rows = [
            [
                t["symbol"],
                qty_text(t["qty"]),
                price_text(t["entry_price"]),
                price_text(t["exit_price"]),
                money_text(t["pnl"]),
                et(t["exit_time"]),
            ]
            for t in trips
        ]
        lines += indent(
            table(["symbol", "qty", "entry", "exit", "P&L", "closed"], rows, right={1, 2, 3, 4})
        )
    return lines
