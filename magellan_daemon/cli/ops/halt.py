"""``magellan halt STRATEGY [--reason TEXT]``: stop new entries (exits keep working).

The halt is a row of the ledger's ``halts`` table: it survives restarts, and a running
daemon's router reads it before every entry, so it applies at once with or without a daemon.
"""

from __future__ import annotations

import argparse

from magellan_core.clock import WallClock
from magellan_daemon.cli.ops.common import EXIT_OK, add_common_arguments, load_context, run_guarded
from magellan_daemon.ledger.store import Ledger

DEFAULT_REASON = "halted by the operator"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the command's arguments."""
    parser.add_argument("strategy", help="the strategy to halt (as named in the config)")
    parser.add_argument("--reason", default=DEFAULT_REASON, help="why (shown by status)")
    add_common_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Write the halt; exit 2 for an unknown strategy."""
    return run_guarded("halt", _halt, args)


def _halt(args: argparse.Namespace) -> int:
    ctx = load_context(args)
    name = ctx.check_strategy(args.strategy)
    ledger = Ledger.open(ctx.ledger_path)
    try:
        ledger.halt(name, args.reason, source="cli", now=WallClock().now())
    finally:
        ledger.close()
    print(f"{name} HALTED: {args.reason}")
    print("new entries are blocked (a running daemon applies it before its next entry);")
    print(f"exits keep working. Lift it with: magellan resume {name}")
    return EXIT_OK
