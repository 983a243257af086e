"""``magellan sim``: run the Alpaca-compatible simulator on loopback until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from magellan_core.corporate_actions import CorporateActionsFileError
from magellan_sim.factory import (
    DEFAULT_START,
    SimOptions,
    build_exchange,
    corporate_actions_of,
)
from magellan_sim.server.server import SimServer

log = logging.getLogger(__name__)


def _start_time(text: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from exc
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(f"--start needs a UTC offset or Z: {text!r}")
    return parsed.astimezone(UTC)


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from exc
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0: {text!r}")
    return value


def _cash(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation as exc:
        raise argparse.ArgumentTypeError(f"not an amount: {text!r}") from exc
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite amount >= 0: {text!r}")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``magellan sim`` arguments."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8700, help="port; 0 picks a free one")
    parser.add_argument(
        "--bars",
        type=Path,
        default=None,
        metavar="DIR",
        help="real bars in the layout DIR/{1Min,1Hour,1Day}/SYMBOL.csv.gz "
        "(default: the seeded synthetic market)",
    )
    parser.add_argument(
        "--corporate-actions",
        type=Path,
        default=None,
        metavar="FILE",
        help="splits and dividends to apply (columns symbol,type,ex_date,new_rate,old_rate,"
        "rate; default: corporate_actions.csv beside the --bars folder, when present)",
    )
    parser.add_argument(
        "--start",
        type=_start_time,
        default=DEFAULT_START,
        metavar="ISO8601",
        help="virtual start time with offset (default "
        f"{DEFAULT_START.isoformat()}, i.e. 09:25 New York on 2025-01-16, five minutes "
        "before a session that the shared real bars and the synthetic market both cover)",
    )
    parser.add_argument(
        "--speed",
        type=_non_negative_float,
        default=1.0,
        help="virtual seconds per wall second (default 1; 0 freezes the clock, which "
        "POST /sim/clock then moves)",
    )
    parser.add_argument("--seed", type=int, default=0, help="synthetic market and fault seed")
    parser.add_argument(
        "--synthetic-symbols",
        type=int,
        default=0,
        metavar="N",
        help="add N made-up crash-prone small caps (QAAAA, QAAAB, ...) to the synthetic "
        "market, with minute bars for the start session and the next (a full-market watch)",
    )
    parser.add_argument(
        "--cash", type=_cash, default=Decimal(100_000), help="starting cash per account"
    )
    parser.add_argument("--key", default=None, help="the only API key accepted (needs --secret)")
    parser.add_argument("--secret", default=None, help="the API secret paired with --key")
    parser.add_argument(
        "--cancel-latency",
        type=_non_negative_float,
        default=2.0,
        metavar="SECONDS",
        help="virtual seconds a cancel stays pending_cancel before it completes; the order "
        "can still fill meanwhile (default 2; 0 cancels within the request)",
    )
    parser.add_argument(
        "--replace-latency",
        type=_non_negative_float,
        default=2.0,
        metavar="SECONDS",
        help="virtual seconds a replace stays pending_replace before the old order becomes "
        "replaced and the new one live (default 2; 0 replaces within the request)",
    )
    parser.add_argument(
        "--no-wash-trade-check",
        dest="wash_trade_check",
        action="store_false",
        help="accept orders that could trade with the account's own opposite open orders "
        "(Alpaca refuses them with 403 'potential wash trade detected')",
    )
    parser.add_argument(
        "--prepack-bars",
        action="store_true",
        help="pack each minute's bar frames before the minute ends, so a benchmark of a "
        "client measures the client, not the simulator's packing (bench_fullmarket)",
    )
    parser.add_argument(
        "--rate-limit",
        type=int,
        default=200,
        metavar="N",
        help="REST requests per key per wall minute (default 200, Alpaca's; 0 disables)",
    )


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; exit 0 then, 2 on bad options, 1 if serving failed."""
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if (args.key is None) != (args.secret is None):
        print("magellan sim: --key and --secret go together", file=sys.stderr)
        return 2
    if args.rate_limit < 0 or not 0 <= args.port <= 65535:
        print("magellan sim: --rate-limit must be >= 0 and --port 0..65535", file=sys.stderr)
        return 2
    if args.synthetic_symbols < 0 or (args.synthetic_symbols and args.bars is not None):
        print(
            "magellan sim: --synthetic-symbols N >= 0, with the synthetic market", file=sys.stderr
        )
        return 2
    if args.bars is not None and not args.bars.is_dir():
        print(f"magellan sim: --bars {args.bars} is not a directory", file=sys.stderr)
        return 2
    options = SimOptions(
        bars_dir=args.bars,
        start=args.start,
        speed=args.speed,
        seed=args.seed,
        synthetic_symbols=args.synthetic_symbols,
        cash=args.cash,
        cancel_latency=args.cancel_latency,
        replace_latency=args.replace_latency,
        wash_trade_check=args.wash_trade_check,
        corporate_actions=args.corporate_actions,
    )
    try:
        actions = corporate_actions_of(options)
    except CorporateActionsFileError as err:
        print(f"magellan sim: {err}", file=sys.stderr)
        return 2
    if actions:
        log.info("%d corporate actions to apply", len(actions))
    try:
        asyncio.run(_serve(options, args))
    except OSError as exc:
        log.error("simulator could not serve: %s", exc)
        return 1
    return 0


async def _serve(options: SimOptions, args: argparse.Namespace) -> None:
    exchange = build_exchange(options)
    server = SimServer(
        exchange,
        host=args.host,
        port=args.port,
        key=args.key,
        secret=args.secret,
        rate_limit=args.rate_limit,
        prepack_bars=args.prepack_bars,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await server.start()
    try:
        print(f"magellan-sim listening on {server.url}", flush=True)
        await stop.wait()
        log.info("simulator stopping")
    finally:
        await server.stop()
