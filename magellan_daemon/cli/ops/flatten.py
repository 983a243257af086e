"""``magellan flatten [STRATEGY] [--yes]``: cancel a strategy's (or every strategy's) open
orders and sell its own shares, through the running daemon's router.

The CLI never talks to the broker: it queues a ``flatten`` command on the control channel
and waits for the daemon to report what it did. Without a running daemon it does nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from magellan_daemon.cli.ops.common import (
    EXIT_FAILURE,
    EXIT_OK,
    Context,
    UsageError,
    add_common_arguments,
    et,
    fail,
    load_context,
    qty_text,
    run_guarded,
)
from magellan_daemon.ledger.control import Command, ControlChannel
from magellan_daemon.ledger.store import Ledger

POLL_SECONDS = 0.2


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the command's arguments."""
    parser.add_argument("strategy", nargs="?", default=None, help="one strategy (default: all)")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="wall seconds to wait for the daemon"
    )
    add_common_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """0 when the daemon flattened without errors, 1 otherwise, 2 on bad usage."""
    return run_guarded("flatten", _flatten, args)


def _flatten(args: argparse.Namespace) -> int:
    ctx = load_context(args)
    name = None if args.strategy is None else ctx.check_strategy(args.strategy)
    if not ctx.ledger_path.exists():
        return fail("flatten", f"no ledger at {ctx.ledger_path}: no daemon is running", 1)
    control = ControlChannel(ctx.ledger_path)
    try:
        snapshot = control.read_status()
        if snapshot is None or not snapshot.fresh:
            seen = "never seen" if snapshot is None else f"last seen {et(snapshot.written_at)}"
            return fail(
                "flatten",
                f"no daemon is running ({seen}); nothing done (flatten goes through the "
                "running daemon's router only)",
                EXIT_FAILURE,
            )
        if not args.yes and not _confirmed(ctx, name):
            print("not confirmed: nothing done")
            return EXIT_FAILURE
        command_id = control.submit("flatten", name, {})
        print(f"flatten {name or 'all strategies'}: command #{command_id} sent to the daemon")
        command = _wait(control, command_id, args.timeout)
    finally:
        control.close()
    return _report(command, args.timeout)


def _confirmed(ctx: Context, name: str | None) -> bool:
    """Ask on the terminal; refuse (UsageError) when there is none to ask on."""
    if not sys.stdin.isatty():
        raise UsageError("stdin is not a terminal: add --yes to flatten without confirmation")
    print("\n".join(_holdings(ctx, name)))
    answer = input(f"Flatten {name or 'ALL strategies'}: cancel open orders and sell? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def _holdings(ctx: Context, name: str | None) -> list[str]:
    ledger = Ledger.open(ctx.ledger_path)
    try:
        positions = ledger.positions(name)
        orders = ledger.orders(strategy=name, open_only=True)
    finally:
        ledger.close()
    lines = [f"  {p.strategy}: {qty_text(p.qty)} {p.symbol}" for p in positions]
    return [*lines, f"  {len(orders)} open orders"] if lines or orders else ["  nothing held"]


def _wait(control: ControlChannel, command_id: int, timeout: float) -> Command | None:
    """The finished command, or the withdrawn/still-running one after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        command = control.get(command_id)
        if command is not None and command.finished:
            return command
        time.sleep(POLL_SECONDS)
    control.withdraw(command_id)
    return control.get(command_id)


def _report(command: Command | None, timeout: float) -> int:
    if command is None:
        return fail("flatten", "the command disappeared from the control channel", 1)
    if not command.finished:
        what = (
            "withdrawn, nothing done"
            if command.status == "withdrawn"
            else "still running in the daemon; check `magellan status`"
        )
        return fail("flatten", f"no answer from the daemon after {timeout:g} s: {what}", 1)
    print("\n".join(_result_lines(command.result or {})))
    ok = command.status == "done" and not (command.result or {}).get("errors")
    return EXIT_OK if ok else EXIT_FAILURE


def _result_lines(result: dict[str, Any]) -> list[str]:
    canceled, sells, errors = (result.get(k) or [] for k in ("canceled", "sells", "errors"))
    lines = [f"canceled {len(canceled)} orders", *(f"  {cid}" for cid in canceled)]
    lines.append(f"sent {len(sells)} sells")
    lines += [f"  sell {qty_text(s['qty'])} {s['symbol']}  {s['client_order_id']}" for s in sells]
    refused = result.get("refused") or []
    lines += [
        f"REFUSED: sell {qty_text(s['qty'])} {s['symbol']}  {s['client_order_id']}" for s in refused
    ]
    lines += [f"ERROR: {e}" for e in errors]
    return lines
