"""``magellan check-config PATH``: validate every config file and show what would run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from magellan_daemon.config.loading import MagellanConfig, load_config, require_daemon_timeframes
from magellan_daemon.errors import ConfigError


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the command's arguments."""
    parser.add_argument("path", type=Path, help="the daemon config (configs/magellan.toml)")


def describe(config: MagellanConfig) -> list[str]:
    """Human-readable lines: mode, accounts (names only), strategies, schedule."""
    lines = [
        f"config: {config.path}",
        f"mode: {config.mode} (--sim at run time uses the simulator)",
        f"feed: {config.feed}",
        f"state_dir: {config.state_dir}",
        "accounts: " + ", ".join(sorted(config.accounts)),
        "strategies:",
    ]
    for name, entry in config.strategies.items():
        state = "enabled" if entry.enabled else "DISABLED"
        lines.append(f"  {name} [{state}] account={entry.account} ({entry.config_path.name})")
        lines.append(f"    symbols: {' '.join(entry.spec.symbols)}")
        lines.append(f"    schedule: {name}: {entry.spec.schedule}")
    return lines


def run(args: argparse.Namespace) -> int:
    """Validate; print the summary (exit 0) or the error on stderr (exit 2)."""
    try:
        config = load_config(args.path)
        require_daemon_timeframes(config)
    except ConfigError as err:
        print(f"magellan check-config: {err}", file=sys.stderr)
        return 2
    print("\n".join(describe(config)))
    return 0
