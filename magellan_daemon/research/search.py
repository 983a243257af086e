"""One study: the trials of a space over one range, recorded in one folder (``trials.csv``), as
a grid (every combination, in order) or chosen by optuna's TPE sampler (ask and tell, its
study in ``study.db`` beside it).

Optuna's trials are asked in batches of the pool's width and told only when their whole batch
has finished, each drawn by a sampler seeded from ``--seed`` and the trial's number: what it
is asked depends only on the trials before its batch and the ones asked before it in it, so
the same command draws the same trials, whether it ran straight through or was killed and
started again (a resumed batch reruns its unfinished trials with the values they were drawn
with, and draws the ones never asked as the first run would have).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from pydantic import ValidationError

from magellan_daemon.research.objective import Objective
from magellan_daemon.research.pool import TrialPool
from magellan_daemon.research.record import TrialsFile
from magellan_daemon.research.space import Scalar, Space, refusal, with_values
from magellan_daemon.research.trial import TrialResult, TrialSetup, TrialTask, skipped

log = logging.getLogger(__name__)
STUDY_NAME = "sweep"


class Listener(Protocol):
    """Told of a study's progress (the progress bar)."""

    def begin(self, label: str, total: int, kept: list[TrialResult]) -> None: ...

    def finished(self, result: TrialResult) -> None: ...


@dataclass
class Study:
    """The trials of ``space`` over ``setup``'s range, recorded in ``record`` from trial
    number ``first`` on (a walk-forward window's study follows the windows before it in one
    ``trials.csv``), its optuna study in ``out``."""

    out: Path
    record: TrialsFile
    space: Space
    setup: TrialSetup
    objective: Objective
    pool: TrialPool
    listener: Listener
    label: str = "trials"
    first: int = 0

    def run(self, search: str, trials: int, seed: int) -> list[TrialResult]:
        """Run what is not yet recorded; every trial's result, by number."""
        self.out.mkdir(parents=True, exist_ok=True)
        size = self.space.size(search, trials)
        self._results = {
            number - self.first: replace(result, number=number - self.first)
            for number, result in self.record.open().items()
            if self.first <= number < self.first + size
        }
        if self._results:
            counted = counts(self._results.values())
            log.info(
                "%s: resuming, %d finished trial(s) kept (%s), not run again",
                self.out,
                len(self._results),
                ", ".join(f"{n} {s}" for s, n in counted.items() if n),
            )
        if search == "grid":
            self._grid()
        else:
            self._optuna(trials, seed)
        return [self._numbered(self._results[n]) for n in sorted(self._results)]

    def _numbered(self, result: TrialResult) -> TrialResult:
        """A result under its number in ``trials.csv`` (the study counts from 0)."""
        return replace(result, number=result.number + self.first)

    def _grid(self) -> None:
        combos = self.space.grid()
        kept = [self._numbered(r) for r in self._results.values()]
        self.listener.begin(self.label, len(combos), kept)
        todo = [
            task
            for number, values in enumerate(combos)
            if number not in self._results and (task := self._task(number, values)) is not None
        ]
        self._run(todo)

    def _task(self, number: int, values: dict[str, Scalar]) -> TrialTask | None:
        """The trial to run, or None when the model refuses the combination (recorded as
        ``skipped``)."""
        try:
            params = with_values(self.setup.base.params, values)
        except ValidationError as exc:
            self._finished(skipped(number, values, refusal(exc)))
            return None
        return TrialTask(number, values, params)

    def _run(self, tasks: list[TrialTask]) -> None:
        for result in self.pool.run(self.setup, tasks):
            self._finished(result)

    def _finished(self, result: TrialResult) -> None:
        self.record.append(self._numbered(result))  # on disk before anything else learns of it
        self._results[result.number] = result
        self.listener.finished(self._numbered(result))

    def _optuna(self, trials: int, seed: int) -> None:
        import optuna  # the sweep's only; the daemon never loads it

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        study = optuna.create_study(
            study_name=STUDY_NAME,
            storage=f"sqlite:///{self.out / 'study.db'}",
            direction=self.objective.direction,
            load_if_exists=True,
        )
        kept = [self._numbered(r) for r in self._results.values()]
        self.listener.begin(self.label, trials, kept)
        width = max(self.pool.workers, 1)
        while True:
            asked = study.get_trials(deepcopy=False)
            open_ = [t.number for t in asked if not t.state.is_finished()]
            first = open_[0] if open_ else len(asked)
            if first >= trials:
                return
            start = first - first % width  # a batch stopped while being told is resumed whole
            batch = range(start, min(start + width, trials))
            self._run([t for n in batch if (t := self._drawn(study, n, seed)) is not None])
            told = {t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()}
            for number in batch:
                if number not in told:
                    self._tell(study, self._results[number])

    def _drawn(self, study: Any, number: int, seed: int) -> TrialTask | None:
        """Trial ``number``'s task: the values it was drawn with when it was asked before
        the sweep stopped, else drawn now; None when it needs no run (recorded already, or
        a refused combination)."""
        import optuna

        study.sampler = optuna.samplers.TPESampler(seed=_seed(seed, number), constant_liar=True)
        asked = study.get_trials(deepcopy=False)
        if number < len(asked):
            trial = optuna.trial.Trial(study, asked[number]._trial_id)
        else:
            trial = study.ask()
        if trial.number != number:
            raise RuntimeError(f"optuna numbered trial {trial.number}, expected {number}")
        values = {p.name: p.suggest(trial) for p in self.space.parameters}
        if number in self._results:
            return None
        return self._task(number, values)

    def _tell(self, study: Any, result: TrialResult) -> None:
        import optuna

        if result.status == "failed":
            study.tell(result.number, state=optuna.trial.TrialState.FAIL)
        else:
            study.tell(result.number, self.objective.told(result))


def _seed(seed: int, number: int) -> int:
    """The sampler's seed for trial ``number``: well mixed, the same in every run."""
    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


def counts(results: Iterable[TrialResult]) -> dict[str, int]:
    """How many trials ended ok, failed and skipped."""
    out = {"ok": 0, "failed": 0, "skipped": 0}
    for r in results:
        out[r.status] += 1
    return out
