"""The live burst path in one process, without sockets or another process on the cores:
our reader over each minute's frames (packed as the simulator packs them), the feed's join
and the runner's batch evaluation with Bear Trap (bench/configs/fullmarket), on the
simulator's synthetic 10,000-symbol market, 9:31..11:30 of its first session; beside it, on
a second runner, main's path before issue 19 (msgpack's defaults, a Bar per message through
the dataclass init and ``bar_check``, lists of Bars to ``_on_bars``; without alpaca-py's
await per message, so it flatters the old path) and msgpack alone on the same frames.
Medians of the last 60 minutes (the indicators are warm), interleaved minute by minute so
the machine's load falls on all three alike. With any argument, cProfile of the new path.

    .venv/bin/python bench/profile_live_burst.py [profile]
"""

import cProfile
import pstats
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import msgpack

from magellan_core.clock import VirtualClock
from magellan_daemon.adapters.alpaca.bar_socket import read_frame
from magellan_daemon.adapters.bar_batch import BarBatch
from magellan_daemon.adapters.bar_check import bar_problem
from magellan_daemon.config.loading import load_config
from magellan_daemon.ledger.store import Ledger
from magellan_daemon.runtime.strategy_runner import StrategyRunner
from magellan_daemon.sessions import SessionBook
from magellan_sim.exchange.wire import stream_bar_dict
from magellan_sim.factory import SimOptions, build_exchange
from strategies.api.model import Bar
from strategies.api.session import Session
from strategies.registry import descriptor

NY = ZoneInfo("America/New_York")
day = datetime(2025, 1, 16)
opened = datetime(2025, 1, 16, 9, 30, tzinfo=NY).astimezone(UTC)
clock = VirtualClock(opened, speed=0)
ex = build_exchange(SimOptions(synthetic_symbols=10000), clock)
config = load_config(Path(__file__).parent / "configs" / "fullmarket" / "magellan.toml")
sc = config.strategies["bear_trap"]


class Router:
    intents = 0

    def submit(self, intents, ids):
        Router.intents += len(intents)

    async def execute(self, intents, ids):
        pass

    def __getattr__(self, name):
        raise AttributeError(name)


tmp = Path(tempfile.mkdtemp())
ledger = Ledger.open(tmp / "l.sqlite")
book = SessionBook(
    [Session(date=day.date(), open=opened, close=opened + timedelta(hours=6, minutes=30))]
)
runner = StrategyRunner(
    name="bear_trap",
    strategy=descriptor("bear_trap").build(sc.params, None, explain_skips=False),
    symbols=sc.spec.symbols,
    ledger=ledger,
    router=Router(),
    clock=clock,
    sessions=lambda: book,
    per_symbol_state=sc.spec.per_symbol_state,
)
runner_old = StrategyRunner(
    name="bear_trap",
    strategy=descriptor("bear_trap").build(sc.params, None, explain_skips=False),
    symbols=sc.spec.symbols,
    ledger=Ledger.open(tmp / "o.sqlite"),
    router=Router(),
    clock=clock,
    sessions=lambda: book,
    per_symbol_state=sc.spec.per_symbol_state,
)


def old_path(frames):
    """main's path without the SDK's per-message await: unpackb per frame (Timestamp
    objects), a Bar per message (bar_from_stream), lists of Bars to _on_bars in 500s."""
    bars = []
    for f in frames:
        for m in msgpack.unpackb(f):
            t = m["t"].to_datetime().astimezone(UTC)
            bar = Bar(
                symbol=str(m["S"]),
                timeframe="1Min",
                t=t,
                open=float(m["o"]),
                high=float(m["h"]),
                low=float(m["l"]),
                close=float(m["c"]),
                volume=float(m["v"]),
            )
            if bar_problem(bar) is None:
                bars.append(bar)
    for i in range(0, len(bars), 500):
        runner_old._on_bars(bars[i : i + 500])


minutes = []
for m in range(1, 121):
    end = opened + timedelta(minutes=m)
    msgs = []
    for b in ex.market.minute_bars_ending_at(end):
        d = dict(stream_bar_dict(b))
        d["t"] = msgpack.Timestamp.from_datetime(d["t"]) if isinstance(d["t"], datetime) else d["t"]
        msgs.append(d)
    minutes.append(
        (end, [msgpack.packb(msgs[i : i + 200], datetime=False) for i in range(0, len(msgs), 200)])
    )
print("frames ready", len(minutes), sum(len(f) for _, f in minutes))
prof = cProfile.Profile()
PROFILE = len(sys.argv) > 1
alone, burst, old = [], [], []
for end, frames in minutes:
    clock.set(end)
    a = time.perf_counter()
    for f in frames:
        msgpack.unpackb(f, raw=False, timestamp=3)
    alone.append(time.perf_counter() - a)
    a = time.perf_counter()
    old_path(frames)
    old.append(time.perf_counter() - a)
    PROFILE and prof.enable()
    a = time.perf_counter()
    batch = BarBatch()
    for f in frames:
        batch.extend(read_frame(f).batch)
    for i in range(0, len(batch), 500):
        runner._on_batch(batch.slice(i, i + 500))
    burst.append(time.perf_counter() - a)
    PROFILE and prof.disable()
alone = sorted(alone[60:])
burst = sorted(burst[60:])
old = sorted(old[60:])


def med(xs: list[float]) -> float:
    return xs[len(xs) // 2]


print(f"msgpack alone median {med(alone) * 1000:.1f} ms")
print(f"new path median {med(burst) * 1000:.1f} ms = {med(burst) / med(alone):.1f}x alone")
print(f"old path median {med(old) * 1000:.1f} ms = {med(old) / med(alone):.1f}x alone")
print(f"intents {Router.intents} (both runners together: the same decisions)")
PROFILE and pstats.Stats(prof).sort_stats("tottime").print_stats(18)
