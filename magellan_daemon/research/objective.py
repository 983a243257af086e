"""What a sweep maximises (or minimises): one key of the backtest's ``metrics``, and which
trials may count as best (``ok``, a value, at least ``min_trades`` closed trades)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from magellan_daemon.backtest.metrics import METRIC_KEYS
from magellan_daemon.research.trial import TrialResult

# Losses: smaller is better. Every other numeric metric is maximised.
MINIMISED = frozenset({"max_drawdown_pct", "max_drawdown_usd", "max_consecutive_losses"})
NOT_OBJECTIVES = frozenset({"max_drawdown_start", "max_drawdown_end", "start_cash"})
OBJECTIVES = tuple(k for k in METRIC_KEYS if k not in NOT_OBJECTIVES)


@dataclass(frozen=True, slots=True)
class Objective:
    """``key`` of the metrics, its direction, and the fewest trades a best trial has."""

    key: str
    min_trades: int = 10

    @property
    def maximise(self) -> bool:
        return self.key not in MINIMISED

    @property
    def direction(self) -> str:
        return "maximize" if self.maximise else "minimize"

    def value(self, result: TrialResult) -> float | None:
        """The objective of a trial that may count as best, else None."""
        if result.status != "ok" or (result.metrics.get("trades") or 0) < self.min_trades:
            return None
        value = result.metrics.get(self.key)
        if value is None or not math.isfinite(value):
            return None
        return float(value)

    def ranked(self, results: Iterable[TrialResult]) -> list[TrialResult]:
        """The trials that may count, best first (ties: the lower trial number)."""
        scored = [(v, r) for r in results if (v := self.value(r)) is not None]
        sign = -1.0 if self.maximise else 1.0
        scored.sort(key=lambda vr: (sign * vr[0], vr[1].number))
        return [r for _, r in scored]

    def told(self, result: TrialResult) -> float:
        """The value optuna is told: the objective, or the worst there is for a trial that
        cannot count (TPE ranks its trials, so only the order matters)."""
        value = self.value(result)
        if value is not None:
            return value
        return -1e300 if self.maximise else 1e300
