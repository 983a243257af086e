"""Trials as Ray tasks on an existing cluster (``--ray-address``: anything ``ray.init`` takes:
``auto``, ``HOST:PORT``, ``ray://HOST:10001``, or ``local`` for a new one on this machine).

The bar files go into Ray's object store once (``ray.put``); every task gets them by
reference and maps them read-only from shared memory on its node (``bar_files.hold``), so
no trial reads or parses a file. Results stream back as tasks finish (``ray.wait``). A
worker that dies mid-trial is Ray's to retry (``max_retries``); the trial's result is the one
its last attempt returns, recorded once. Ray is the optional ``cluster`` extra.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from magellan_daemon.research.pool import MAX_RETRIES
from magellan_daemon.research.trial import (
    TrialResult,
    TrialSetup,
    TrialTask,
    one_line,
    run_trial,
)
from magellan_sim.market import bar_files

WARM_SECONDS = 0.5
INSTALL_HINT = "Ray is not installed: pip install -e '.[cluster]' (make test installs it)"


class RayUnavailable(Exception):
    """Ray is not installed, or the cluster cannot be reached."""


class RayPool:
    """Trials on the Ray cluster at ``address``."""

    def __init__(self, address: str, files: list[Path], workers: int | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise RayUnavailable(INSTALL_HINT) from None
        self._ray = ray
        try:
            ray.init(
                address=address,
                include_dashboard=False,
                log_to_driver=False,  # a trial's warnings would drown the progress bar
                logging_level=logging.WARNING,
            )
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise RayUnavailable(f"cannot join the Ray cluster at {address}: {exc}") from None
        self._address = address
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self._workers = workers or max(cpus, 1)
        self._bars = ray.put(bar_files.load(files))
        self._task = ray.remote(num_cpus=1, max_retries=MAX_RETRIES)(_ray_trial)

    @property
    def workers(self) -> int:
        return self._workers

    @property
    def where(self) -> str:
        return f"Ray cluster at {self._address} ({self._workers} trials at once)"

    def start(self) -> None:
        """Warm one Ray worker per trial slot (imports done, bars mapped) before the first
        trial, as the local pool starts its workers: a trial's time is then the trial's."""
        warm = self._ray.remote(num_cpus=1)(_warm)
        self._ray.get([warm.remote(self._bars) for _ in range(self._workers)])

    def run(self, setup: TrialSetup, tasks: Iterable[TrialTask]) -> Iterator[TrialResult]:
        """At most ``workers`` tasks in flight (``--workers`` trials at once, as locally);
        the next is sent as one finishes."""
        ray = self._ray
        shared = ray.put(setup)
        waiting = list(tasks)
        waiting.reverse()  # popped from the end: in the given order
        running: dict[Any, TrialTask] = {}
        while waiting or running:
            while waiting and len(running) < self._workers:
                task = waiting.pop()
                running[self._task.remote(shared, self._bars, task)] = task
            done, _ = ray.wait(list(running), num_returns=1)
            for ref in done:
                task = running.pop(ref)
                try:
                    yield ray.get(ref)
                except ray.exceptions.RayError as exc:  # its worker died MAX_RETRIES + 1 times
                    yield TrialResult(task.number, "failed", 0.0, task.values, error=one_line(exc))

    def close(self) -> None:
        self._ray.shutdown()


def _warm(bars: dict[str, Any]) -> int:
    """A worker made ready: this module (and the backtest) imported, the bars mapped; held
    long enough that each slot's warm-up lands on its own worker."""
    bar_files.hold(bars)
    time.sleep(WARM_SECONDS)
    return os.getpid()


def _ray_trial(setup: TrialSetup, bars: dict[str, Any], task: TrialTask) -> TrialResult:
    """One trial in a Ray worker, on the bars from the object store."""
    logging.getLogger().setLevel(logging.ERROR)
    bar_files.hold(bars)
    return run_trial(setup, task)
