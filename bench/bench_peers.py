"""Our backtest against backtrader and NautilusTrader: the same RSI rule on the same shared
1Min bars, one table from one run (``make bench-peers``, which installs the peers first).

The rule is Hourly Swing's on 1Min bars (bench/configs/hourly_swing_1min.toml: RSI(14), EMA
averages, bands 60/40, 100 shares). Ours runs through ``magellan backtest``'s own entry
(``magellan_daemon.cli.backtest``, as bench/bench_backtest.py runs it) in this venv, on
whatever engine is in the checkout; each peer runs its script in bench/peers/ in its own
venv (bench/.venv-backtrader, bench/.venv-nautilus) and reads the shared CSVs itself.

Sessions: ours reads every bar in the files and feeds only regular-session minutes to the
rule (the others are skipped: they never reach the RSI nor fill an order); the peers are
fed those regular-session minutes only, from the sessions of our calendar written to
bench/out/sessions.json. So bars/s is taken over the regular-session bars for every engine
(ours' own figure over every bar it read is printed beside it).

Trades: every fill of each peer is compared with ours by (symbol, the bar that filled it,
side, qty, price). backtrader fills a market order at the next bar's open, as ours does;
NautilusTrader fills it at the close of the bar that made the signal, so its fills are
compared by the signal (symbol, signal bar, side, qty) and their prices differ by design.

    .venv/bin/python bench/bench_peers.py [--start 2024-04-01 --end 2024-04-05]

With a --start after the data's first day, every engine warms its RSI up on the bars before
it and trades from it; the peers run those warm-up bars inside their timed run (and count
them), ours before its driven part: the figures to quote are the whole data's (no options).

Prints the table and writes it, with the comparison, to bench/out/bench_peers.json; the
ratios of ours to each peer are reported (bench/common.py's report()) as figures too, for
bench/goals.py's table (with a --start or --end, under names that carry the window).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import subprocess
import sys
import tempfile
import time
import tomllib
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from common import REPO, SHARED_BARS, machine, report

from magellan_daemon.cli import backtest as cli
from magellan_sim.market.calendar import SessionCalendar

BENCH = REPO / "bench"
OUT = BENCH / "out"
CONFIG = BENCH / "configs" / "magellan.toml"
RULE = BENCH / "configs" / "hourly_swing_1min.toml"
STRATEGY = "hourly_swing"
STAMP = "%Y-%m-%dT%H:%M:%SZ"

Fill = tuple[str, str, str, int, float]  # symbol, bar start (UTC), side, qty, price


@dataclass
class Peer:
    """One peer run: its venv's python, its script, its mode and how it fills."""

    name: str
    python: Path
    script: Path
    extra: tuple[str, ...]
    fills_at_signal_close: bool


PEERS = (
    Peer(
        "backtrader runonce",
        BENCH / ".venv-backtrader/bin/python",
        BENCH / "peers/backtrader_rsi.py",
        ("--mode", "runonce"),
        False,
    ),
    Peer(
        "backtrader next",
        BENCH / ".venv-backtrader/bin/python",
        BENCH / "peers/backtrader_rsi.py",
        ("--mode", "next"),
        False,
    ),
    Peer(
        "nautilus",
        BENCH / ".venv-nautilus/bin/python",
        BENCH / "peers/nautilus_rsi.py",
        (),
        True,
    ),
)


@dataclass
class Row:
    """One line of the table."""

    engine: str
    mode: str
    bars: int
    trades: int
    seconds: float  # the driven part: the engine's run, without reading the CSVs
    wall: float  # the whole command
    bars_per_second: float = 0.0
    ours_ratio: float = 0.0  # ours' bars/s over this engine's (same bars)


def write_sessions(path: Path) -> None:
    """Our calendar's sessions ({date: [open, close]}, UTC ISO), for the peers' filter."""
    calendar = SessionCalendar()
    sessions = calendar.sessions(calendar.first_date, calendar.last_date)
    days = {s.date.isoformat(): [s.open.isoformat(), s.close.isoformat()] for s in sessions}
    path.write_text(json.dumps(days))


def run_ours(start: date | None, end: date | None) -> tuple[Row, list[Fill], list[Fill], int]:
    """Ours, in this process: the row, its fills keyed by the bar that filled them and by
    the bar that signalled them, and every bar it read (extended hours included)."""
    with tempfile.TemporaryDirectory() as out:
        args = argparse.Namespace(
            bars=SHARED_BARS,
            start=start or date(2000, 1, 1),
            end=end or date(2100, 1, 1),
            strategy=[STRATEGY],
            config=CONFIG,
            out=Path(out),
            cash=Decimal(100_000),
            quiet=True,
        )
        began = time.perf_counter()
        summary = asyncio.run(cli.backtest(args, cli._chosen(args)))
        wall = time.perf_counter() - began
        by_fill, by_signal = [], []
        with (Path(out) / "trades.csv").open() as f:
            for r in csv.DictReader(f):
                filled = datetime.fromisoformat(r["filled_at"]) - timedelta(minutes=1)
                key = (r["symbol"], r["side"], int(r["qty"]), float(r["price"]))
                bar = filled.astimezone(UTC).strftime(STAMP)
                by_fill.append((key[0], bar, key[1], key[2], key[3]))
                by_signal.append((key[0], r["signal_time"], key[1], key[2], key[3]))
    s = summary["strategies"][STRATEGY]
    seconds = s["bars_processed"] / s["bars_per_second"]
    row = Row("magellan (ours)", "magellan backtest", 0, len(by_fill), seconds, wall)
    return row, by_fill, by_signal, s["bars_processed"]


def run_peer(peer: Peer, sessions: Path, start: date | None, end: date | None) -> Row:
    """One peer in its own venv; its JSON line becomes a row."""
    fills = OUT / f"fills-{peer.name.replace(' ', '-')}.csv"
    cmd = [
        str(peer.python),
        str(peer.script),
        "--bars",
        str(SHARED_BARS / "1Min"),
        "--sessions",
        str(sessions),
        "--fills",
        str(fills),
        "--symbols",
        ",".join(rule_symbols()),
        *peer.extra,
    ]
    if start:
        cmd += ["--start", start.isoformat()]
    if end:
        cmd += ["--end", end.isoformat()]
    began = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - began
    if done.returncode != 0:
        raise RuntimeError(f"{peer.name} failed:\n{done.stderr[-3000:]}")
    # The last line is the result (engines may log before it).
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return Row(
        result["engine"], result["mode"], result["bars"], result["trades"], result["seconds"], wall
    )


def rule_symbols() -> list[str]:
    """The symbols the rule runs on (our config's universe)."""
    return sorted(tomllib.loads(RULE.read_text())["symbols"])


def read_fills(path: Path) -> list[Fill]:
    """A peer's fills CSV."""
    with path.open() as f:
        return [
            (r["symbol"], r["bar"], r["side"], int(r["qty"]), float(r["price"]))
            for r in csv.DictReader(f)
        ]


def compare(ours: list[Fill], theirs: list[Fill], by_signal: bool) -> dict[str, object]:
    """How many of the peer's fills are ours (as a multiset), and the first that are not.
    ``by_signal``: compared without the price (the peer fills at the signal bar's close)."""

    def key(f: Fill) -> tuple:
        # Prices to 4 places: our exchange records a fill price so (sub-penny prints exist).
        return f[:4] if by_signal else (*f[:4], round(f[4], 4))

    mine, peer = Counter(map(key, ours)), Counter(map(key, theirs))
    both = sum((mine & peer).values())
    return {
        "compared_on": "symbol, signal bar, side, qty"
        if by_signal
        else "symbol, fill bar, side, qty, price",
        "ours": len(ours),
        "peer": len(theirs),
        "matching": both,
        "only_ours": sorted(mine - peer)[:5],
        "only_peer": sorted(peer - mine)[:5],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=date.fromisoformat, default=None)
    parser.add_argument("--end", type=date.fromisoformat, default=None)
    args = parser.parse_args()
    missing = [str(p.python.relative_to(REPO)) for p in PEERS if not p.python.exists()]
    if missing:
        # make bench runs every bench/bench_*.py: say how to get the peers, do not fail.
        print(f"# bench_peers: no {', '.join(sorted(set(missing)))}: run make bench-peers")
        return 0
    OUT.mkdir(exist_ok=True)
    sessions = OUT / "sessions.json"
    write_sessions(sessions)
    header = f"# bench_peers on {machine()}"
    print(header, flush=True)
    window = f"{args.start or 'first bar'} .. {args.end or 'last bar'}"
    print(f"# rule: RSI(14) EMA, buy 100 > 60, sell < 40; {', '.join(rule_symbols())}; {window}")

    ours, our_fills, our_signals, bars_read = run_ours(args.start, args.end)
    rows, comparisons = [ours], {}
    for peer in PEERS:
        row = run_peer(peer, sessions, args.start, args.end)
        rows.append(row)
        fills = read_fills(OUT / f"fills-{peer.name.replace(' ', '-')}.csv")
        base = our_signals if peer.fills_at_signal_close else our_fills
        comparisons[peer.name] = compare(base, fills, peer.fills_at_signal_close)
    regular = {r.bars for r in rows[1:]}
    if len(regular) != 1:
        raise RuntimeError(f"the peers were fed different bars: {regular}")
    ours.bars = regular.pop()
    for row in rows:
        row.bars_per_second = row.bars / row.seconds
    for row in rows:
        row.ours_ratio = ours.bars_per_second / row.bars_per_second

    print(
        f"{'engine':<24} {'mode':<30} {'bars':>9} {'trades':>7} {'driven s':>9} "
        f"{'whole s':>8} {'bars/s':>9} {'ours/it':>8}"
    )
    for r in rows:
        print(
            f"{r.engine:<24} {r.mode:<30} {r.bars:>9,} {r.trades:>7,} {r.seconds:>9.1f} "
            f"{r.wall:>8.1f} {r.bars_per_second:>9,.0f} {r.ours_ratio:>7.2f}x"
        )
    print(
        f"# bars: regular-session 1Min bars the rule ran on (ours read {bars_read:,} bars, "
        f"extended hours included, and skipped the others: {bars_read / ours.seconds:,.0f} "
        "bars/s over all it read); driven s: the engine's run without reading the CSVs; "
        "whole s: ours' backtest call with CSV loading and reports, a peer's whole process"
    )
    for name, c in comparisons.items():
        print(
            f"trades {name}: {c['matching']:,} of ours {c['ours']:,} and its {c['peer']:,} "
            f"match on {c['compared_on']}"
        )
        if c["only_ours"] or c["only_peer"]:
            print(f"  first only in ours: {c['only_ours']}")
            print(f"  first only in {name}: {c['only_peer']}")
    whole = not (args.start or args.end)  # the goals are stated on the whole data
    for peer, row in zip(PEERS, rows[1:], strict=True):
        c = comparisons[peer.name]
        report(
            f"RSI rule, ours / {peer.name}" + ("" if whole else f" ({window})"),
            row.ours_ratio,
            "x",
            f"{ours.bars_per_second:,.0f} against {row.bars_per_second:,.0f} bars/s on the same "
            f"{row.bars:,} regular-session 1Min bars; {c['matching']:,} of ours' "
            f"{c['ours']:,} trades match",
        )
    (OUT / "bench_peers.json").write_text(
        json.dumps(
            {
                "machine": header[2:],
                "measured": datetime.now(UTC).strftime(STAMP),
                "window": window,
                "symbols": rule_symbols(),
                "bars_read_by_ours": bars_read,
                "rows": [asdict(r) for r in rows],
                "trades": comparisons,
            },
            indent=2,
        )
    )
    print(f"# written to {OUT.relative_to(REPO) / 'bench_peers.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
