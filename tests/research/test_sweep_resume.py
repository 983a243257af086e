"""``magellan sweep`` killed mid-way and started again: nothing lost, nothing run twice, the same
trials as straight through (grid, optuna, walk-forward), and walk-forward's windows checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import BARS_DIR
from tests.research.sweep_runs import (
    OPTUNA,
    by_trial,
    kill_after_first_row,
    magellan,
    rows,
    sweep_args,
    write,
)


def test_a_sweep_killed_mid_way_resumes_losing_nothing_and_running_nothing_twice(
    tmp_path: Path,
) -> None:
    # Optuna's: its batches and its study in SQLite beside trials.csv make the harder resume;
    # a grid's is the walk-forward test's below (and bench_sweep's, on 16 settings).
    space = write(tmp_path / "space.toml", OPTUNA)
    extra = ["--search", "optuna", "--trials", "4", "--workers", "2"]
    straight = tmp_path / "straight"
    magellan(*sweep_args(space, straight, *extra))

    resumed = tmp_path / "resumed"
    kill_after_first_row(sweep_args(space, resumed, *extra), resumed)
    kept = by_trial(resumed / "trials.csv")
    assert 1 <= len(kept) < len(by_trial(straight / "trials.csv"))
    again = magellan(*sweep_args(space, resumed, *extra))
    assert f"{len(kept)} finished trial(s) kept" in again.stderr

    # Nothing lost or doubled, the kept rows untouched, and the same trials as straight
    # through: optuna draws by its seed and each trial's number, not by timing.
    final = by_trial(resumed / "trials.csv")
    assert final == by_trial(straight / "trials.csv")
    assert all(final[n] == row for n, row in kept.items())


def test_walk_forward_picks_on_train_tests_on_the_next_month_and_stitches(
    tmp_path: Path,
) -> None:
    space = write(tmp_path / "space.toml", "[daily_trend.symbols.SPY]\nupper = [55, 65]\n")
    out = tmp_path / "wf"
    args = [
        "sweep",
        "--bars",
        str(BARS_DIR),
        "--strategy",
        "daily_trend",
        "--start",
        "2019-01-01",
        "--end",
        "2019-04-30",
        "--space",
        str(space),
        "--out",
        str(out),
        "--min-trades",
        "0",
        "--walk-forward",
        "2M:1M",
        "--quiet",
    ]
    # Killed in its first window, then resumed: what follows holds all the same.
    kill_after_first_row(args, out)
    kept = len(by_trial(out / "trials.csv"))  # window 1's: 1, or both if they ended together
    assert f"{kept} finished trial(s) kept" in magellan(*args).stderr
    windows = rows(out / "walk_forward.csv")
    assert [
        (w["window"], w["train_start"], w["train_end"], w["test_start"], w["test_end"])
        for w in windows
    ] == [
        ("1", "2019-01-01", "2019-02-28", "2019-03-01", "2019-03-31"),
        ("2", "2019-02-01", "2019-03-31", "2019-04-01", "2019-04-30"),
    ]
    assert list(windows[0]) == [
        "window",
        "train_start",
        "train_end",
        "test_start",
        "test_end",
        "param.symbols.SPY.upper",
        "in_sample_sharpe",
        "out_of_sample_sharpe",
        "out_of_sample_return_pct",
    ]
    # One trials.csv: window 1's two trials are 0 and 1, window 2's 2 and 3.
    trials = rows(out / "trials.csv")
    assert sorted(int(t["trial"]) for t in trials) == [0, 1, 2, 3]
    for number, window in enumerate(windows, start=1):
        own = sorted(
            (t for t in trials if int(t["trial"]) // 2 == number - 1), key=lambda t: int(t["trial"])
        )
        best = max(own, key=lambda r: float(r["sharpe"] or "-inf"))  # a tie: the lower trial
        assert window["param.symbols.SPY.upper"] == best["param.symbols.SPY.upper"]
        assert window["in_sample_sharpe"] == best["sharpe"]
    walk = json.loads((out / "sweep.json").read_text())["walk_forward"]
    chained = 1.0
    for window in windows:
        chained *= 1 + float(window["out_of_sample_return_pct"]) / 100
    assert walk["out_of_sample"]["total_return_pct"] == pytest.approx((chained - 1) * 100)
    assert "efficiency" in walk
    assert (out / "walk_forward.png").is_file()
    assert "Walk-forward" in (out / "report.html").read_text()
