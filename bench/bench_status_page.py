"""The status page's cost to the daemon: ``/api/status`` latency, how many answers four
clients asking flat out get, and the daemon's event-loop lag (its own metric) while they do,
against the lag with nobody asking. The daemon runs in sim mode (embedded simulator, 120x)
on the repo's configs with a free port for the page and the metrics.

    .venv/bin/python bench/bench_status_page.py
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from common import REPO, machine, median, percentile, report

WARM_SECONDS = 30.0  # let the daemon trade a little first
LOAD_SECONDS = 10.0
CLIENTS = 4


def _configs(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for source in (REPO / "configs").glob("*.toml"):
        text = source.read_text()
        if source.name == "magellan.toml":
            text = text.replace("[web]\nport = 8780", "[web]\nport = 0")
            text = text.replace('feed = "iex"', 'feed = "iex"\nmetrics_port = 0')
        (folder / source.name).write_text(text)
    return folder / "magellan.toml"


async def _wait_urls(log: Path) -> tuple[str, str]:
    for _ in range(1200):
        text = log.read_text(errors="replace")
        page = re.search(r"web status page at (\S+)", text)
        metrics = re.search(r"metrics on (\S+)/metrics", text)
        if page and metrics:
            return page.group(1), metrics.group(1)
        await asyncio.sleep(0.1)
    raise SystemExit("the daemon did not go READY:\n" + log.read_text()[-3000:])


async def _lag(http: aiohttp.ClientSession, metrics: str) -> float:
    async with http.get(metrics + "/metrics") as response:
        body = await response.text()
    found = re.search(r"^magellan_event_loop_lag_seconds (\S+)", body, re.M)
    assert found
    return float(found.group(1))


async def _measure(page: str, metrics: str) -> None:
    await asyncio.sleep(WARM_SECONDS)
    async with aiohttp.ClientSession() as http:
        quiet = []
        for _ in range(20):
            quiet.append(await _lag(http, metrics))
            await asyncio.sleep(0.5)
        latency = []
        for _ in range(200):
            started = time.perf_counter()
            async with http.get(page + "api/status") as response:
                await response.read()
            latency.append(time.perf_counter() - started)
        stop = time.monotonic() + LOAD_SECONDS
        answered = 0

        async def client() -> None:
            nonlocal answered
            while time.monotonic() < stop:
                async with http.get(page + "api/status") as response:
                    await response.read()
                answered += 1

        loaded: list[float] = []

        async def watch() -> None:
            while time.monotonic() < stop:
                loaded.append(await _lag(http, metrics))
                await asyncio.sleep(0.5)

        await asyncio.gather(*(client() for _ in range(CLIENTS)), watch())
    report(
        "status_latency_median",
        median(latency) * 1000,
        "ms",
        f"p95 {percentile(latency, 95) * 1000:.1f} ms, 200 requests",
    )
    report(
        "status_flat_out",
        answered / LOAD_SECONDS,
        "answers/s",
        f"{CLIENTS} clients for {LOAD_SECONDS:g} s",
    )
    report(
        "loop_lag_under_load_max",
        max(loaded) * 1000,
        "ms",
        f"median {median(loaded) * 1000:.1f} ms; nobody asking: max {max(quiet) * 1000:.1f} ms",
    )


def main() -> None:
    print(machine(), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        config = _configs(work / "configs")
        log = work / "d.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("APCA_")}
        with log.open("wb") as out:
            where = ["--config", str(config), "--state-dir", str(work / "state")]
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "magellan_daemon",
                    "run",
                    "--sim",
                    "--sim-speed",
                    "120",
                    *where,
                ],
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
            try:
                asyncio.run(_measure(*asyncio.run(_wait_urls(log))))
            finally:
                proc.terminate()
                proc.wait(60)


if __name__ == "__main__":
    main()
