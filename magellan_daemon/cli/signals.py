"""``magellan signals``: run one strategy alone over recorded bars, write its decisions.

Reads ``--bars DIR/<timeframe>/<SYMBOL>.csv.gz`` for the strategy's timeframe and the
symbols of its config, replays them through ``signals_replay.Replay`` (fills at the next
bar's open, no account-level gates, sizing at a notional ``--equity``) and writes the CSV
``strategy,symbol,signal_time,action,price,reason``. The splits of the corporate-actions
file (``--corporate-actions FILE``, default ``corporate_actions.csv`` beside the ``--bars``
folder) reach the strategy as the daemon meets them: history split-adjusted as of each bar,
the state re-based at each ex-date (``signals_replay``). Exit codes: 0 done, 1 bad bar data,
2 bad config, usage or corporate-actions file.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

from magellan_core.corporate_actions import (
    CorporateActionsFileError,
    SplitTable,
    corporate_actions_path,
    load_corporate_actions,
)
from magellan_daemon.backtest.bars_csv import BarFileError, iter_bars, symbol_files
from magellan_daemon.backtest.signals_replay import Decision, Replay, SessionLookup, write_decisions
from magellan_daemon.config.loading import load_config, load_strategy_params, read_toml
from magellan_daemon.errors import ConfigError
from strategies.registry import REGISTRY, descriptor

DEFAULT_EQUITY = 100_000.0
DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "magellan.toml"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the command's arguments."""
    parser.add_argument("--strategy", required=True, choices=list(REGISTRY))
    parser.add_argument("--bars", required=True, type=Path, help="folder with 1Day/ 1Hour/ 1Min/")
    parser.add_argument("--start", type=date.fromisoformat, help="first New York date (incl.)")
    parser.add_argument("--end", type=date.fromisoformat, help="last New York date (incl.)")
    parser.add_argument(
        "--config",
        type=Path,
        default=DEFAULT_CONFIG,
        help="magellan.toml, or the strategy's own TOML (default: %(default)s)",
    )
    parser.add_argument("--out", required=True, type=Path, help="CSV file to write")
    parser.add_argument(
        "--corporate-actions",
        type=Path,
        default=None,
        metavar="FILE",
        help="splits to adjust the history for (default: corporate_actions.csv beside the "
        "--bars folder, when present)",
    )
    parser.add_argument(
        "--equity",
        type=float,
        default=DEFAULT_EQUITY,
        help="notional equity for sizing entries (default: %(default)s)",
    )
    parser.add_argument(
        "--all-symbols",
        action="store_true",
        help="watch every symbol with a bar file, not just the configured ones "
        '(strategies whose universe may be ["*"])',
    )


def strategy_params(name: str, config: Path) -> Any:
    """The strategy's params from a daemon config or from its own TOML file."""
    if "strategies" in read_toml(config):
        entry = load_config(config).strategies.get(name)
        if entry is None:
            raise ConfigError(config, f"strategies.{name}", "strategy not configured")
        return entry.params
    return load_strategy_params(name, config)


def split_table(bars: Path, explicit: Path | None) -> SplitTable:
    """The splits of the corporate-actions file for ``--bars`` (none without a file);
    ``CorporateActionsFileError`` names a bad line."""
    path = corporate_actions_path(bars, explicit)
    return SplitTable(load_corporate_actions(path) if path is not None else ())


def run(args: argparse.Namespace) -> int:
    """Run the replay; print a one-line summary."""
    try:
        params = strategy_params(args.strategy, args.config)
        splits = split_table(args.bars, args.corporate_actions)
    except (ConfigError, CorporateActionsFileError) as err:
        print(f"magellan signals: {err}", file=sys.stderr)
        return 2
    kind = descriptor(args.strategy)
    if args.all_symbols:
        if not kind.accepts_all_symbols:
            print(f"magellan signals: {args.strategy} cannot watch every symbol", file=sys.stderr)
            return 2
        params = kind.watching_all_symbols(params)
    if args.start and args.end and args.start > args.end:
        print("magellan signals: --start is after --end", file=sys.stderr)
        return 2
    strategy = kind.build(params, None)
    spec = kind.resolve(params)
    files = symbol_files(args.bars, strategy.timeframe)
    wanted = None if spec.whole_market else set(spec.symbols)
    chosen = {s: p for s, p in files.items() if wanted is None or s in wanted}
    missing = sorted((wanted or set()) - set(files))
    if missing:
        print(f"  no bar files for: {' '.join(missing)}", file=sys.stderr)
    if not chosen:
        where = args.bars / strategy.timeframe
        print(f"magellan signals: no bar files for the strategy in {where}", file=sys.stderr)
        return 2
    from magellan_sim.market.calendar import SessionCalendar

    replay = Replay(
        strategy,
        SessionLookup(SessionCalendar()),
        equity=args.equity,
        start=args.start,
        end=args.end,
        splits=splits,
    )
    began = time.perf_counter()
    try:
        with args.out.open("w", newline="", encoding="utf-8") as out:
            write_decisions(out, _all_decisions(replay, chosen, strategy.timeframe))
    except BarFileError as err:
        print(f"magellan signals: {err}", file=sys.stderr)
        return 1
    elapsed = max(time.perf_counter() - began, 1e-9)
    st = replay.stats
    if st.splits:
        print(f"  re-based the strategy at {st.splits} split ex-dates", file=sys.stderr)
    print(
        f"{args.strategy}: {st.decisions} decisions ({st.entries} enter, {st.exits} exit), "
        f"{st.symbols} symbols, {st.bars} bars in {elapsed:.2f} s "
        f"({st.bars / elapsed:,.0f} bars/s) -> {args.out}"
    )
    return 0


def _all_decisions(replay: Replay, files: dict[str, Path], timeframe: str) -> Iterator[Decision]:
    for symbol, path in sorted(files.items()):
        before = replay.stats.decisions
        yield from replay.run_symbol(symbol, iter_bars(path, symbol, timeframe))
        bars = replay.stats.per_symbol.get(symbol, 0)
        decided = replay.stats.decisions - before
        print(f"  {symbol}: {bars} bars, {decided} decisions", file=sys.stderr)
