"""``magellan resume STRATEGY``: lift a halt so the strategy may enter again."""

from __future__ import annotations

import argparse

from magellan_daemon.cli.ops.common import EXIT_OK, add_common_arguments, load_context, run_guarded
from magellan_daemon.ledger.store import Ledger


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the command's arguments."""
    parser.add_argument("strategy", help="the strategy to resume (as named in the config)")
    add_common_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Delete the halt row (exit 0 even if there was none); exit 2 for an unknown strategy."""
    return run_guarded("resume", _resume, args)


def _resume(args: argparse.Namespace) -> int:
    ctx = load_context(args)
    name = ctx.check_strategy(args.strategy)
    ledger = Ledger.open(ctx.ledger_path)
    try:
        lifted = ledger.resume(name)
    finally:
        ledger.close()
    print(f"{name} resumed: new entries allowed" if lifted else f"{name} was not halted")
    return EXIT_OK
