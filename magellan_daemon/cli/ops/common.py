"""What every operator command shares: its arguments, the state dir, the ledger, formats."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from magellan_daemon.config.loading import MagellanConfig, load_config
from magellan_daemon.errors import ConfigError
from magellan_daemon.ledger.store import LEDGER_FILE
from magellan_daemon.timefmt import NEW_YORK

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad usage (unknown strategy, refused confirmation…): exit 2 with the message."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Context:
    """The validated config and where its ledger lives."""

    config: MagellanConfig
    state_dir: Path

    @property
    def ledger_path(self) -> Path:
        """The daemon's SQLite ledger (also the control channel's file)."""
        return self.state_dir / LEDGER_FILE

    def check_strategy(self, name: str) -> str:
        """``name`` if the config knows that strategy, else a UsageError naming the choices."""
        if name not in self.config.strategies:
            known = ", ".join(sorted(self.config.strategies))
            raise UsageError(f"unknown strategy {name!r} (configured: {known})")
        return name


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """``--config`` and ``--state-dir``, found the same way as ``magellan run`` finds them."""
    parser.add_argument(
        "--config", type=Path, default=Path("configs/magellan.toml"), help="the daemon config"
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="where ledger.sqlite is "
        "(default: $STATE_DIRECTORY under systemd, else the config's state_dir)",
    )


def load_context(args: argparse.Namespace) -> Context:
    """Validate the config (ConfigError propagates) and resolve the state dir."""
    config = load_config(args.config)
    env_dir = os.environ.get("STATE_DIRECTORY")
    state_dir = args.state_dir or (Path(env_dir) if env_dir else None) or config.state_dir
    return Context(config=config, state_dir=state_dir)


def fail(command: str, message: str, code: int) -> int:
    """Print ``magellan COMMAND: message`` on stderr and return ``code``."""
    print(f"magellan {command}: {message}", file=sys.stderr)
    return code


def run_guarded(
    command: str, body: Callable[[argparse.Namespace], int], args: argparse.Namespace
) -> int:
    """Run ``body(args)``, turning config and usage errors into exit 2 with the message."""
    try:
        return body(args)
    except ConfigError as err:
        return fail(command, str(err), EXIT_USAGE)
    except UsageError as err:
        return fail(command, str(err), EXIT_USAGE)


def parse_time(text: str | None) -> datetime | None:
    """A ledger/snapshot ISO time (``Z`` or offset) as an aware datetime."""
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def et(t: datetime | str | None) -> str:
    """New York time for people: ``2024-11-18 09:31:02 ET`` ("-" when unknown)."""
    value = parse_time(t) if isinstance(t, str) else t
    if value is None:
        return "-"
    return value.astimezone(NEW_YORK).strftime("%Y-%m-%d %H:%M:%S ET")


def qty_text(q: Decimal | str) -> str:
    """Shares without a useless fraction."""
    value = Decimal(q)
    return f"{value:,.0f}" if value == value.to_integral_value() else f"{value:,}"


def price_text(p: Decimal | str | None) -> str:
    """A price: 2 decimals, 4 below one dollar (sub-penny stocks)."""
    if p is None:
        return "n/a"
    value = Decimal(p)
    return f"{value:,.4f}" if abs(value) < 1 else f"{value:,.2f}"


def money_text(m: Decimal | str | None) -> str:
    """Signed dollars with cents ("n/a" when unknown)."""
    return "n/a" if m is None else f"{Decimal(m):+,.2f}"
