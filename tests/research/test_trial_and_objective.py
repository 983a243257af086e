"""A trial that raises is a failed result, not a stopped sweep; which trials may count as best."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

from magellan_daemon.config.loading import load_config
from magellan_daemon.research.objective import Objective
from magellan_daemon.research.trial import TrialResult, TrialSetup, TrialTask, run_trial

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "magellan.toml"


def test_a_trial_whose_backtest_raises_is_failed_with_the_one_line_reason(tmp_path: Path) -> None:
    base = load_config(CONFIG).strategies["bear_trap"]
    setup = TrialSetup(
        tmp_path / "no-bars", base, date(2024, 5, 14), date(2024, 5, 15), Decimal(100_000)
    )
    result = run_trial(setup, TrialTask(7, {"min_drop_pct": 0.1}, base.params))
    assert (result.number, result.status, result.values) == (7, "failed", {"min_drop_pct": 0.1})
    assert result.error.startswith("FileNotFoundError: ")
    assert "\n" not in result.error
    assert result.metrics == {}


def scored(number: int, sharpe: float | None, trades: int, status: str = "ok") -> TrialResult:
    metrics = {"sharpe": sharpe, "trades": trades, "max_drawdown_pct": 5.0 + number}
    return TrialResult(number, status, 1.0, {}, metrics=metrics)  # type: ignore[arg-type]


def test_a_trial_with_fewer_trades_than_the_minimum_never_counts_as_best() -> None:
    objective = Objective("sharpe", min_trades=10)
    results = [scored(0, 3.0, 9), scored(1, 1.0, 10), scored(2, 2.0, 12), scored(3, None, 50)]
    assert [r.number for r in objective.ranked(results)] == [2, 1]
    assert objective.told(results[0]) == -1e300  # optuna learns it is the worst


def test_losses_are_minimised_and_ties_go_to_the_lower_trial() -> None:
    objective = Objective("max_drawdown_pct", min_trades=0)
    assert not objective.maximise and objective.direction == "minimize"
    results = [scored(2, 1.0, 1), scored(0, 1.0, 1), scored(1, 1.0, 1)]
    assert [r.number for r in objective.ranked(results)] == [0, 1, 2]
    tied = Objective("sharpe", min_trades=0)
    assert [r.number for r in tied.ranked(results)] == [0, 1, 2]
    assert objective.told(scored(5, 1.0, 1, "skipped")) == 1e300
