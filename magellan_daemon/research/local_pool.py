"""The embedded default: trials on a pool of local worker processes.

Workers come from a fork server that imported the backtest once (``forkserver`` preload), so
each starts in milliseconds and none inherits the parent's threads (the progress bar's).

The bars are shared, not copied per worker: the pool reads the sweep's bar files once (from
the parsed cache), writes each column as an ``.npy`` file in a scratch folder, and every
worker maps them read-only (``np.load(mmap_mode="r")``, held by ``bar_files.hold``): the
pages are the operating system's, one copy however many workers, and no trial reads or
parses a file. The scratch folder goes when the pool closes (a killed sweep's is replaced
by the next start).

A worker that dies breaks the pool: it is started again and the trials that were in it run
again, up to ``MAX_RETRIES`` times each, then count as failed.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np

from magellan_daemon.research.pool import MAX_RETRIES
from magellan_daemon.research.trial import TrialResult, TrialSetup, TrialTask, run_trial
from magellan_sim.market import bar_files

log = logging.getLogger(__name__)


def cores() -> int:
    """The cores this process may run on (the default ``--workers``)."""
    return len(os.sched_getaffinity(0))


class LocalPool:
    """``workers`` local processes mapping the bars of ``files``, shared through ``scratch``."""

    def __init__(self, workers: int, files: list[Path], scratch: Path) -> None:
        self._workers = workers
        self._files = files
        self._scratch = scratch
        self._shared: dict[str, dict[str, str]] | None = None
        self._executor: ProcessPoolExecutor | None = None

    @property
    def workers(self) -> int:
        return self._workers

    @property
    def where(self) -> str:
        return f"local pool of {self._workers} worker{'s' if self._workers > 1 else ''}"

    def start(self) -> None:
        """Share the bars and start the pool before the first trial (each worker maps the
        bars as it starts): the sweep's clock then times trials, not the setup."""
        executor = self._running()
        for future in [executor.submit(_ready) for _ in range(self._workers)]:
            future.result()

    def run(self, setup: TrialSetup, tasks: Iterable[TrialTask]) -> Iterator[TrialResult]:
        pending = {task.number: task for task in tasks}
        deaths: Counter[int] = Counter()
        while pending:
            executor = self._running()
            futures: dict[Future[TrialResult], TrialTask] = {
                executor.submit(run_trial, setup, task): task for task in pending.values()
            }
            broken = False
            for future in as_completed(futures):
                try:
                    result = future.result()
                except BrokenProcessPool:
                    broken = True
                    continue
                del pending[result.number]
                yield result
            if broken:
                self._stop()
                yield from self._after_death(pending, deaths)

    def _after_death(
        self, pending: dict[int, TrialTask], deaths: Counter[int]
    ) -> Iterator[TrialResult]:
        """The trials that were in a broken pool: again, or failed after ``MAX_RETRIES``."""
        log.warning("a worker process died: %d trial(s) run again on new workers", len(pending))
        for number in list(pending):
            deaths[number] += 1
            if deaths[number] > MAX_RETRIES:
                task = pending.pop(number)
                error = f"WorkerDied: its worker process died {deaths[number]} times"
                yield TrialResult(number, "failed", 0.0, task.values, error=error)

    def close(self) -> None:
        self._stop()
        if self._shared is not None:  # only what this pool wrote
            shutil.rmtree(self._scratch, ignore_errors=True)

    def _running(self) -> ProcessPoolExecutor:
        if self._shared is None:
            self._shared = share(bar_files.load(self._files), self._scratch)
        if self._executor is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload([__name__])
            self._executor = ProcessPoolExecutor(
                self._workers, mp_context=context, initializer=_start, initargs=(self._shared,)
            )
        return self._executor

    def _stop(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        # Trials still running are abandoned: their workers are ended, not waited for.
        for process in list(getattr(executor, "_processes", {}).values()):
            process.terminate()
        executor.shutdown(wait=True, cancel_futures=True)


def share(columns: dict[str, bar_files.Columns], scratch: Path) -> dict[str, dict[str, str]]:
    """Each column as an ``.npy`` file in ``scratch`` (emptied first); where each went."""
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    index: dict[str, dict[str, str]] = {}
    for k, (file, file_columns) in enumerate(columns.items()):
        index[file] = {}
        for name, values in file_columns.items():
            path = scratch / f"{k}-{name}.npy"
            np.save(path, values)
            index[file][name] = str(path)
    return index


def mapped(index: dict[str, dict[str, str]]) -> dict[str, bar_files.Columns]:
    """The shared columns, mapped read-only."""
    return {
        file: {name: np.load(path, mmap_mode="r") for name, path in paths.items()}
        for file, paths in index.items()
    }


def _start(index: dict[str, dict[str, str]]) -> None:
    """A worker's start: quiet logs, Ctrl-C left to the parent, the bars mapped."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.getLogger().setLevel(logging.ERROR)  # a trial's warnings would drown the bar
    bar_files.hold(mapped(index))


def _ready() -> int:
    return os.getpid()
