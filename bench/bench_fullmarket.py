"""The full-market crash watch over the real websocket path, and its memory.

A ``magellan sim --synthetic-symbols 10000 --prepack-bars`` subprocess publishes every
symbol's minute bar at each minute, its frames packed before the minute ends (so the burst
is the daemon's work, not the simulator packing on the same cores); this process runs the
daemon (``Daemon``, paper mode, Bear Trap with ``universe = ["*"]``: bench/configs/fullmarket)
on its own event loop against it: our bar socket, the bar feed, the strategy runner, the
router and alpaca-py's REST client.
The clocks of both run at ``SPEED`` through a whole virtual session, then the next session's
first hour. Measured inside the daemon by wrapping three methods (bench-only):

- burst: from the first frame of a minute decoded by the bar socket's reader (the bar
  feed's ``on_batch``) to the end of the runner's evaluation of the last bar of that minute,
  for minutes with at least 9,000 bars;
- msgpack alone: the frames of every tenth full minute are kept (in a temporary file, not
  in the daemon's memory) and unpacked again after the run with ``msgpack.unpackb`` alone,
  with the reader's options (``timestamp=3``) and with msgpack's defaults; the burst over it
  is the goal's ratio;
- bar to order: from a bar's arrival at the stream handler to the router's call of the REST
  ``submit_order`` for the entry it triggered (the entry gate's reads included);
- RSS of this process (the daemon; the simulator is another process) by virtual hour and
  its change from one day's close to the next day's first hour, and
  the strategy's state per symbol (deep size of its per-symbol objects).

    .venv/bin/python bench/bench_fullmarket.py [SYMBOLS] [SPEED]

With ``BENCH_PROFILE=FILE`` the daemon's whole run is under cProfile (slower: the figures
then describe the profiled run), the stats are written to FILE and the top functions by own
time printed.
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import os
import pstats
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import msgpack
from common import REPO, deep_size, machine, median, percentile, report, rss_bytes

from magellan_core.clock import VirtualClock
from magellan_daemon.adapters.alpaca import bar_socket, rest
from magellan_daemon.adapters.bar_batch import BarBatch
from magellan_daemon.config.loading import load_config
from magellan_daemon.node.daemon import Daemon
from magellan_daemon.node.endpoint import Endpoint
from magellan_daemon.runtime import bar_feed, strategy_runner

NEW_YORK = ZoneInfo("America/New_York")
DAY1, DAY2 = datetime(2025, 1, 16), datetime(2025, 1, 17)  # the sim's default start session
MAGELLAN = str(Path(sys.executable).with_name("magellan"))
CONFIG = REPO / "bench" / "configs" / "fullmarket" / "magellan.toml"
FULL_BURST = 9_000

arrivals: dict[tuple[str, datetime], float] = {}
first_of_minute: dict[datetime, float] = {}
evaluated_until: dict[datetime, float] = defaultdict(float)
bars_of_minute: dict[datetime, int] = defaultdict(int)
evaluating: dict[datetime, float] = defaultdict(float)  # seconds inside the runner, per minute
latencies: list[float] = []  # ms, bar decoded to submit_order called, per entry
SAMPLE_EVERY = 10  # minutes whose frames are kept for the msgpack-alone figure
# (minute, frame) records of the sampled minutes; open for the whole run, closed at exit
frames_file = tempfile.TemporaryFile()  # noqa: SIM115


def _instrument() -> None:
    """Wrap the bar socket's frame reader, the feed's batch arrival, the runner's batch
    evaluation and the REST submit."""
    read_frame = bar_socket.read_frame

    def sampling_read_frame(frame: object) -> bar_socket.FrameRead:
        read = read_frame(frame)
        times = read.batch.t
        if times and times[0].minute % SAMPLE_EVERY == 0 and isinstance(frame, bytes):
            stamp = int(times[0].timestamp())
            frames_file.write(stamp.to_bytes(8, "big") + len(frame).to_bytes(4, "big") + frame)
        return read

    on_batch = bar_feed.BarFeed.on_batch

    def timed_on_batch(self: bar_feed.BarFeed, batch: BarBatch) -> None:
        now = time.perf_counter()
        for symbol, t in zip(batch.symbol, batch.t, strict=True):
            if t not in first_of_minute:
                first_of_minute[t] = now
                # keep the bench's own bookkeeping small: it shares the daemon's RSS
                for key in [k for k in arrivals if k[1] < t - timedelta(minutes=3)]:
                    del arrivals[key]
            arrivals[(symbol, t)] = now
        on_batch(self, batch)

    on_batch_eval = strategy_runner.StrategyRunner._on_batch

    def timed_on_batch_eval(self: strategy_runner.StrategyRunner, batch: BarBatch) -> int:
        began = time.perf_counter()
        count = on_batch_eval(self, batch)
        done = time.perf_counter()
        minutes = set(batch.t)
        for t in minutes:
            evaluated_until[t] = max(evaluated_until[t], done)
            evaluating[t] += (done - began) / len(minutes)
        for t in batch.t:
            bars_of_minute[t] += 1
        return count

    submit = rest.AlpacaBroker.submit_order

    async def timed_submit(self: rest.AlpacaBroker, **kwargs: object) -> object:
        cid = str(kwargs["client_order_id"])
        key = _entry_key(cid)
        if key is not None and key in arrivals:
            latencies.append((time.perf_counter() - arrivals[key]) * 1000)
        return await submit(self, **kwargs)

    bar_socket.read_frame = sampling_read_frame  # type: ignore[assignment]
    bar_feed.BarFeed.on_batch = timed_on_batch  # type: ignore[method-assign]
    strategy_runner.StrategyRunner._on_batch = timed_on_batch_eval  # type: ignore[method-assign]
    rest.AlpacaBroker.submit_order = timed_submit  # type: ignore[method-assign]


def _unpack_alone() -> tuple[list[float], list[float]]:
    """ms to unpack each sampled full minute's frames with msgpack alone (best of 5): with
    the reader's options, and with msgpack's defaults."""
    frames_file.seek(0)
    data = frames_file.read()
    by_minute: dict[int, list[bytes]] = defaultdict(list)
    at = 0
    while at < len(data):
        stamp = int.from_bytes(data[at : at + 8], "big")
        size = int.from_bytes(data[at + 8 : at + 12], "big")
        by_minute[stamp].append(data[at + 12 : at + 12 + size])
        at += 12 + size
    ours, defaults = [], []
    for frames in by_minute.values():
        rows = sum(len(msgpack.unpackb(f)) for f in frames)
        if rows < FULL_BURST:
            continue
        for options, into in (({"raw": False, "timestamp": 3}, ours), ({}, defaults)):
            best = float("inf")
            for _ in range(5):
                began = time.perf_counter()
                for f in frames:
                    msgpack.unpackb(f, **options)
                best = min(best, time.perf_counter() - began)
            into.append(best * 1000)
    return ours, defaults


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


async def _run_to(
    url: str, clock: VirtualClock, start: datetime | None, end: datetime, speed: float
) -> None:
    """Both clocks (set to ``start`` if given) running at ``speed`` until ``end``, frozen."""
    if start is not None:
        anchor = await asyncio.to_thread(_post, f"{url}/sim/clock", {"set": start.isoformat()})
        clock.adopt(anchor)
    anchor = await asyncio.to_thread(_post, f"{url}/sim/clock", {"speed": speed})
    clock.adopt(anchor)
    await clock.sleep_until(end)
    clock.adopt(await asyncio.to_thread(_post, f"{url}/sim/clock", {"speed": 0}))
    await asyncio.sleep(1.0)  # the last minute's burst is still being handled


def _entry_key(cid: str) -> tuple[str, datetime] | None:
    """(symbol, signal bar start) of an entry's id ``mg-bt-SYM-YYYYmmddTHHMM-entry``."""
    parts = cid.split("-")
    if len(parts) < 5 or parts[-1] != "entry":
        return None
    return parts[2], datetime.strptime(parts[3], "%Y%m%dT%H%M").replace(tzinfo=UTC)


async def _bench(url: str, symbols: int, speed: float, tmp: Path) -> None:
    config = load_config(CONFIG)
    ws = url.replace("http://", "ws://")
    endpoint = Endpoint(
        account="main",
        key="sim-main",
        secret="sim-secret",
        paper=True,
        trading_url=url,
        data_url=url,
        trading_ws=f"{ws}/stream",
        data_ws=f"{ws}/v2/{config.feed}",
    )
    clock = VirtualClock.from_anchor(_get(f"{url}/sim/clock"))
    daemon = Daemon(
        config=config,
        endpoints={"main": endpoint},
        clock=clock,
        state_dir=tmp / "state",
        log_dir=tmp / "trades",
    )
    await daemon.start()
    rss: list[tuple[str, int]] = [("READY", rss_bytes())]
    try:
        for day, hours in ((DAY1, range(10, 17)), (DAY2, range(10, 11))):
            start: datetime | None = datetime(day.year, day.month, day.day, 9, 30)
            start = start.replace(tzinfo=NEW_YORK)  # type: ignore[union-attr]
            for hour in hours:
                until = datetime(day.year, day.month, day.day, hour, tzinfo=NEW_YORK)
                if hour == 10:
                    until += timedelta(minutes=30)
                await _run_to(url, clock, start, until, speed)
                rss.append((f"{day:%m-%d} {until:%H:%M} ET", rss_bytes()))
                start = None
        runner = daemon.runners["bear_trap"]
        state = runner.strategy._symbols  # type: ignore[attr-defined]
        per_symbol = deep_size(state) / max(1, len(state))
    finally:
        await daemon.stop(drain_seconds=2)
    _print(symbols, speed, rss, per_symbol, len(state))


def _print(symbols: int, speed: float, rss: list, per_symbol: float, watched: int) -> None:
    bursts = [
        (evaluated_until[t] - first) * 1000
        for t, first in first_of_minute.items()
        if bars_of_minute[t] >= FULL_BURST and evaluated_until[t] > 0
    ]
    report(
        f"full-market burst ({symbols:,} symbols)",
        median(bursts) if bursts else float("nan"),
        "ms",
        f"median of {len(bursts)} minutes; p99 {percentile(bursts, 99):.1f} ms, max "
        f"{max(bursts, default=float('nan')):.1f} ms; first bar decoded to last bar evaluated",
    )
    alone, alone_defaults = _unpack_alone()
    burst, unpack = (median(bursts) if bursts else float("nan")), median(alone or [float("nan")])
    report(
        "  msgpack alone unpacking the same frames",
        unpack,
        "ms",
        f"median of {len(alone)} sampled minutes, best of 5 each, the reader's options "
        f"(timestamp=3); with msgpack's defaults {median(alone_defaults or [float('nan')]):.1f} ms",
    )
    report(
        "burst / msgpack alone",
        burst / unpack,
        "x",
        "goal <= 4x; medians of the same run",
    )
    inside = [evaluating[t] * 1000 for t in first_of_minute if bars_of_minute[t] >= FULL_BURST]
    report(
        "  of which in the strategy runner",
        median(inside) if inside else float("nan"),
        "ms",
        "median per minute: new-bar filter, a Bar per evaluated row, Bear Trap's on_bar, "
        "records, saves; the rest is the socket, our reader's unpack and row checks, the "
        "bar feed, the queue hops",
    )
    report(
        "bar to order p50",
        percentile(latencies, 50),
        "ms",
        f"{len(latencies)} entries; bar decoded to REST submit_order called",
    )
    report("bar to order p99", percentile(latencies, 99), "ms", f"{len(latencies)} entries")
    first, last = rss[0][1], rss[-1][1]
    report(
        "daemon RSS watching the market",
        last / 2**20,
        "MiB",
        f"at {rss[-1][0]}; READY {first / 2**20:.0f} MiB; by hour "
        + ", ".join(f"{label} {value / 2**20:.0f}" for label, value in rss[1:]),
    )
    by_label = dict(rss)
    close, next_day = by_label.get("01-16 16:00 ET"), by_label.get("01-17 10:30 ET")
    if close and next_day:
        report(
            "daemon RSS per day",
            (next_day - close) / 2**20,
            "MiB",
            f"change from day 1's close ({close / 2**20:.0f} MiB) to day 2's first hour "
            f"({next_day / 2**20:.0f} MiB); the synthetic symbols have two sessions",
        )
    report(
        "strategy state per symbol",
        per_symbol,
        "bytes",
        f"deep size of Bear Trap's per-symbol objects, {watched:,} symbols, speed {speed:g}x",
    )


def main() -> int:
    symbols = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    speed = float(sys.argv[2]) if len(sys.argv) > 2 else 120.0
    print(f"# bench_fullmarket on {machine()}", flush=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sim = subprocess.Popen(
        [
            *(MAGELLAN, "sim", "--port", str(port), "--speed", "0"),
            *("--cash", "1000000000", "--synthetic-symbols", str(symbols), "--prepack-bars"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        end = time.monotonic() + 300
        while True:
            try:
                _get(f"{url}/sim/clock")
                break
            except OSError:
                if time.monotonic() > end or sim.poll() is not None:
                    raise RuntimeError("simulator did not come up") from None
                time.sleep(0.5)
        _instrument()
        with tempfile.TemporaryDirectory() as tmp:
            profile_to = os.environ.get("BENCH_PROFILE")
            profiler = cProfile.Profile() if profile_to else None
            if profiler is not None:
                profiler.enable()
            try:
                import uvloop

                uvloop.run(_bench(url, symbols, speed, Path(tmp)))
            except ImportError:
                asyncio.run(_bench(url, symbols, speed, Path(tmp)))
            if profiler is not None and profile_to:
                profiler.disable()
                profiler.dump_stats(profile_to)
                pstats.Stats(profile_to).sort_stats("tottime").print_stats(30)
    finally:
        sim.send_signal(signal.SIGTERM)
        sim.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
