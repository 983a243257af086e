"""Where a sweep's trials run: a ``TrialPool`` takes a batch of trials and yields each result as
it finishes (any order), every trial exactly once: its result, or ``failed`` with why."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol

from magellan_daemon.research.trial import TrialResult, TrialSetup, TrialTask

# A trial whose worker dies (killed, out of memory) is run again this many times, then
# recorded as failed (Ray's ``max_retries`` for the cluster, the same count locally).
MAX_RETRIES = 3


class TrialPool(Protocol):
    """The local process pool or a Ray cluster."""

    @property
    def workers(self) -> int:
        """How many trials run at once."""
        ...

    @property
    def where(self) -> str:
        """Where the trials run, for the log and ``sweep.json``."""
        ...

    def run(self, setup: TrialSetup, tasks: Iterable[TrialTask]) -> Iterator[TrialResult]:
        """Run ``tasks`` over ``setup``; yield each result as it finishes."""
        ...

    def close(self) -> None:
        """Stop every worker (trials still running are abandoned, never recorded)."""
        ...
