"""``magellan run``: start the daemon in sim, paper or live mode.

Mode rules (never surprising, live never the default):

- ``--sim``, or no keys in the environment for an account, and no ``--broker-url``: the
  embedded simulator on a free loopback port (``sim``).
- keys present: Alpaca paper (``paper``); ``--broker-url`` points paper at another
  Alpaca-compatible endpoint (a ``magellan sim`` started separately, whose virtual clock the
  daemon then adopts).
- ``live`` only when the config says ``mode = "live"`` AND ``--live`` is given; either alone
  is refused with a message naming what is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvloop

from magellan_daemon.errors import ConfigError
from magellan_daemon.observability import sdnotify
from magellan_daemon.observability.logs import FORMATS, configure_logging, register_secret

log = logging.getLogger("magellan")


@dataclass(frozen=True, slots=True, kw_only=True)
class ModeDecision:
    """The mode chosen, or why none can be."""

    mode: str | None  # "sim", "paper", "live"
    error: str | None = None


def decide_mode(
    *,
    config_mode: str,
    live_flag: bool,
    sim_flag: bool,
    have_keys: bool,
    broker_url: str | None,
    under_systemd: bool = False,
) -> ModeDecision:
    """Pure mode decision; see the module docstring."""
    if live_flag and config_mode != "live":
        return ModeDecision(
            mode=None,
            error='--live given but the config says mode = "paper": set mode = "live" in the '
            "config to trade real money",
        )
    if config_mode == "live" and not live_flag:
        return ModeDecision(
            mode=None,
            error='the config says mode = "live" but --live was not given: add --live to trade '
            'real money (or set mode = "paper")',
        )
    if config_mode == "live":
        if sim_flag or broker_url:
            return ModeDecision(
                mode=None, error="--live cannot be combined with --sim or --broker-url"
            )
        if not have_keys:
            return ModeDecision(mode=None, error="live mode needs API keys in the environment")
        return ModeDecision(mode="live")
    if sim_flag or (not have_keys and broker_url is None):
        if under_systemd and not sim_flag:
            # A service with an empty credentials file must not quietly trade a simulator.
            return ModeDecision(
                mode=None,
                error="no Alpaca keys in the environment of the systemd service: fill the "
                "EnvironmentFile (or pass --sim to run the simulator on purpose)",
            )
        return ModeDecision(mode="sim")
    return ModeDecision(mode="paper")


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``magellan run``."""
    parser.add_argument("--config", type=Path, default=Path("configs/magellan.toml"))
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="ledger and trade logs "
        "(default: $STATE_DIRECTORY under systemd, else the config's state_dir)",
    )
    parser.add_argument(
        "--log-dir", type=Path, default=None, help="CSV trade logs (default: <state-dir>/trades)"
    )
    parser.add_argument(
        "--sim", action="store_true", help="use the embedded simulator even with keys"
    )
    parser.add_argument(
        "--sim-bars",
        type=Path,
        default=None,
        help="recorded bars for the simulator (default: synthetic market)",
    )
    parser.add_argument("--sim-start", type=_iso, default=None, help="virtual start time, ISO-8601")
    parser.add_argument(
        "--sim-speed", type=float, default=60.0, help="virtual seconds per wall second (default 60)"
    )
    parser.add_argument(
        "--sim-until", type=_iso, default=None, help="stop cleanly at this virtual time"
    )
    parser.add_argument("--sim-seed", type=int, default=0, help="synthetic market seed")
    parser.add_argument(
        "--no-skip-closed",
        dest="skip_closed",
        action="store_false",
        help="in sim mode, do not fast-forward while the market is closed and nothing is due",
    )
    parser.add_argument(
        "--broker-url", default=None, help="an Alpaca-compatible endpoint for paper mode"
    )
    parser.add_argument(
        "--live", action="store_true", help='trade real money (needs mode = "live" in the config)'
    )
    parser.add_argument(
        "--log-format",
        choices=FORMATS,
        default="auto",
        help="auto: journald under systemd, else text; or text, json, journal",
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )


def _iso(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def run(args: argparse.Namespace) -> int:
    """Run until SIGTERM/SIGINT or ``--sim-until``; 0 on a clean stop, 2 on bad config."""
    configure_logging(args.log_format, level=args.log_level, stream=sys.stderr)
    from magellan_daemon.config.loading import load_config, require_daemon_timeframes
    from magellan_daemon.web.settings import web_token

    try:
        config = load_config(args.config)
        require_daemon_timeframes(config)
        web_token(config.web, config.path)  # [web] off loopback needs its token set
    except ConfigError as exc:
        print(f"magellan run: config error: {exc}", file=sys.stderr)
        return 2
    keys = {name: _keys(acct) for name, acct in config.accounts.items()}
    for pair in keys.values():
        for value in pair or ():
            register_secret(value)
    decision = decide_mode(
        config_mode=config.mode,
        live_flag=args.live,
        sim_flag=args.sim,
        have_keys=all(k is not None for k in keys.values()),
        broker_url=args.broker_url,
        under_systemd=bool(os.environ.get("INVOCATION_ID")),
    )
    if decision.mode is None:
        print(f"magellan run: refused: {decision.error}", file=sys.stderr)
        return 2
    if decision.mode == "sim" and args.sim_bars is not None:
        from magellan_core.corporate_actions import CorporateActionsFileError
        from magellan_sim.factory import SimOptions, corporate_actions_of

        try:
            corporate_actions_of(SimOptions(bars_dir=args.sim_bars))
        except CorporateActionsFileError as exc:
            print(f"magellan run: {exc}", file=sys.stderr)
            return 2
    if decision.mode == "sim" and args.sim_until is not None:
        from magellan_sim.factory import DEFAULT_START

        start = args.sim_start or DEFAULT_START
        if args.sim_until <= start:
            print(
                f"magellan run: --sim-until {args.sim_until.isoformat()} is not after the "
                f"simulation's start {start.isoformat()} (--sim-start): it would stop at once",
                file=sys.stderr,
            )
            return 2
    try:
        return uvloop.run(_main(config, decision.mode, keys, args))
    except KeyboardInterrupt:
        return 0


def _keys(account: Any) -> tuple[str, str] | None:
    key, secret = os.environ.get(account.key_env), os.environ.get(account.secret_env)
    return (key, secret) if key and secret else None


async def _main(config: Any, mode: str, keys: dict[str, Any], args: argparse.Namespace) -> int:
    from magellan_daemon.errors import BrokerFatal
    from magellan_daemon.node.daemon import EXIT_BROKER_FATAL, EXIT_FAILURE
    from magellan_daemon.node.modes import build_runtime
    from magellan_daemon.tasks import spawn

    runtime = await build_runtime(config, mode, keys, args)
    daemon = runtime.daemon
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, daemon.request_stop)
    watchdog = spawn(sdnotify.watchdog_task(alive=daemon.alive), name="systemd-watchdog")
    starting = asyncio.ensure_future(daemon.start())
    stopping = asyncio.ensure_future(daemon.wait_stop_requested())
    # A stop requested while starting (SIGTERM, a fatal broker answer) ends the startup.
    await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    failure: BaseException | None = None
    if not starting.done():
        starting.cancel()
        with contextlib.suppress(BaseException):
            await starting
        log.warning("stop requested during startup: not going READY")
    else:
        failure = starting.exception()
    if failure is not None or not daemon.ready.is_set():
        if isinstance(failure, BrokerFatal):
            daemon.broker_fatal(failure)
        elif failure is not None:
            log.error("startup failed, not going READY: %s", failure)
            sdnotify.status(f"startup failed: {failure}")
        stopping.cancel()
        await daemon.stop(drain_seconds=1)
        await runtime.close()
        watchdog.cancel()
        if daemon.exit_code == EXIT_BROKER_FATAL:
            return EXIT_BROKER_FATAL
        return EXIT_FAILURE if failure is not None or daemon.exit_code else 0
    runtime.start_helpers()
    sdnotify.ready(f"{mode.upper()}: {', '.join(sorted(daemon.runners))}; {daemon.status_line()}")
    await stopping
    sdnotify.stopping(f"draining {daemon.router.stats.in_flight} in-flight orders")
    log.info("stopping: draining in-flight orders, closing streams, flushing the ledger")
    await runtime.stop_helpers()
    await daemon.stop()
    await runtime.close()
    watchdog.cancel()  # last: the drain itself is watched too
    await asyncio.gather(watchdog, return_exceptions=True)
    if daemon.exit_code:
        log.error("stopped with exit code %d", daemon.exit_code)
    else:
        log.info("stopped cleanly")
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    return daemon.exit_code
