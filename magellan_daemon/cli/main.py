"""The ``magellan`` command: one sub-command per module, imported only when used.

Each command module exposes ``configure(parser)`` (adds its arguments) and
``run(args) -> int`` (the exit code). Exit codes are decided here and in those ``run``
functions only: 0 success, 1 runtime failure, 2 bad configuration or usage.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# name -> (module, one-line description shown by ``magellan --help``)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("magellan_daemon.cli.run", "run the trading daemon (sim, paper or live)"),
    "sim": ("magellan_sim.cli", "run the Alpaca-compatible simulator on loopback"),
    "signals": (
        "magellan_daemon.cli.signals",
        "run one strategy over recorded bars and write its decisions to CSV",
    ),
    "backtest": (
        "magellan_daemon.cli.backtest",
        "run strategies over recorded bars on the daemon's router, ledger and the simulator",
    ),
    "sweep": (
        "magellan_daemon.cli.sweep",
        "sweep a strategy's parameters over recorded bars (grid or optuna, walk-forward, Ray)",
    ),
    "check-config": (
        "magellan_daemon.cli.check_config",
        "validate every config and show what would run",
    ),
    "status": (
        "magellan_daemon.cli.ops.status",
        "positions, P&L, pending intents, halts and jobs, from the ledger and the daemon",
    ),
    "halt": ("magellan_daemon.cli.ops.halt", "stop new entries of a strategy (exits keep working)"),
    "resume": ("magellan_daemon.cli.ops.resume", "allow a halted strategy to enter again"),
    "flatten": (
        "magellan_daemon.cli.ops.flatten",
        "cancel a strategy's orders and sell its own shares, through the running daemon",
    ),
    "trades": ("magellan_daemon.cli.ops.trades", "the ledger's fills and round trips as tables"),
}


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The top-level parser; only the chosen sub-command's module is imported."""
    parser = argparse.ArgumentParser(
        prog="magellan",
        description="Magellan trading daemon: three equity strategies on Alpaca.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = next((a for a in (argv or []) if not a.startswith("-")), None)
    for name, (module_name, help_text) in COMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            module = importlib.import_module(module_name)
            module.configure(sub_parser)
            sub_parser.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``magellan`` console script."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(args_list)
    args = parser.parse_args(args_list)
    args._argv = ["magellan", *args_list]  # the command as typed (sweep.json records it)
    return int(args._run(args))


if __name__ == "__main__":
    sys.exit(main())
