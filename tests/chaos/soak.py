"""The soak: several virtual trading days at high speed with all three strategies on one
account, the daemon's RSS, open file descriptors, asyncio task count and ledger size sampled
each virtual hour, and their growth per virtual day reported (a least-squares slope over the
samples after the first day, which is warm-up: caches, the first ledger pages).
"""

from __future__ import annotations

import asyncio
import os
import re
import urllib.request
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from tests.chaos import invariants
from tests.e2e.harness import SAFETY_TIMEOUT, Daemon, Sim, config_dir, ny

START = ("2024-11-11", "09:00")  # a Monday: Bear Trap crash days 11-13, 11-14, 11-15 follow
SOAK_SPEED = 3000.0
HOUR = timedelta(hours=1)


@dataclass
class Sample:
    """One hourly reading of the daemon process."""

    hours: float
    rss_kib: int
    fds: int
    tasks: int
    ledger_bytes: int


@dataclass
class SoakResult:
    """The samples and the growth per virtual day of each."""

    days: int
    samples: int = 0
    rss_per_day_kib: float = 0.0
    fds_per_day: float = 0.0
    tasks_per_day: float = 0.0
    ledger_per_day_kib: float = 0.0
    last_rss_kib: int = 0
    last_fds: int = 0
    last_tasks: int = 0
    violations: list[str] = field(default_factory=list)


async def run_soak(bars_dir: Path, workdir: Path, days: int) -> SoakResult:
    """Run ``days`` virtual days from ``START``; sample every virtual hour."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = config_dir(
        workdir, {"magellan.toml": ('feed = "iex"', 'feed = "iex"\nmetrics_port = 0')}
    )
    start = ny(*START)
    samples: list[Sample] = []
    async with Sim(bars_dir, start) as sim:
        daemon = Daemon(config, workdir / "state", sim.url, workdir / "daemon.log")
        daemon.start()
        await daemon.wait_ready()
        metrics = _metrics_url(daemon)
        for hour in range(1, 24 * days + 1):
            t = start + hour * HOUR
            sim.clock.set_speed(SOAK_SPEED)
            await asyncio.wait_for(sim.clock.sleep_until(t), SAFETY_TIMEOUT)
            samples.append(await asyncio.to_thread(_sample, daemon, metrics, hour))
        sim.pause()
        result = SoakResult(days=days, samples=len(samples))
        code = await daemon.stop()
        if code != 0:
            result.violations.append(f"soak: SIGTERM stop exited {code}")
        result.violations += invariants.final_violations(sim, daemon, sim.clock.now())
    steady = [s for s in samples if s.hours > 24] if days > 1 else samples
    result.rss_per_day_kib = _slope(steady, "rss_kib")
    result.fds_per_day = _slope(steady, "fds")
    result.tasks_per_day = _slope(steady, "tasks")
    result.ledger_per_day_kib = _slope(steady, "ledger_bytes") / 1024
    last = samples[-1]
    result.last_rss_kib, result.last_fds, result.last_tasks = last.rss_kib, last.fds, last.tasks
    return result


def _sample(daemon: Daemon, metrics: str, hour: int) -> Sample:
    assert daemon.proc is not None
    proc = Path(f"/proc/{daemon.proc.pid}")
    status = (proc / "status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1))  # type: ignore[union-attr]
    fds = len(os.listdir(proc / "fd"))
    with urllib.request.urlopen(metrics, timeout=10) as response:
        text = response.read().decode()
    tasks = int(float(re.search(r"^magellan_asyncio_tasks (\S+)$", text, re.M).group(1)))  # type: ignore[union-attr]
    ledger = sum(p.stat().st_size for p in daemon.state_dir.glob("ledger.sqlite*") if p.is_file())
    return Sample(hour, rss, fds, tasks, ledger)


def _slope(samples: list[Sample], name: str) -> float:
    """Least-squares growth of ``name`` per 24 sampled hours."""
    if len(samples) < 2:
        return 0.0
    xs = [s.hours for s in samples]
    ys = [float(getattr(s, name)) for s in samples]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return 24 * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var


def _metrics_url(daemon: Daemon) -> str:
    found = re.findall(r"metrics on (http://127\.0\.0\.1:\d+)/metrics", daemon.log_text())
    assert found, "no metrics line in the daemon's log"
    return f"{found[-1]}/metrics"
