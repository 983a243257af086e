"""``magellan sweep`` on its two kinds of workers: a grid on the local pool whose trials equal
the direct ``magellan backtest`` of each setting, and the same grid as Ray tasks on a real
local instance; on each, a worker SIGKILLed mid-trial changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

from magellan_daemon.research.space import format_value
from tests.conftest import BARS_DIR
from tests.research.sweep_runs import (
    CONFIG,
    CRASH,
    GRID,
    by_trial,
    magellan,
    processes,
    run_killing_a_worker,
    sweep_args,
    write,
)


def test_a_grid_equals_direct_backtests_and_survives_a_killed_worker_locally_and_on_ray(
    tmp_path: Path,
) -> None:
    space = write(tmp_path / "space.toml", GRID)
    out = tmp_path / "pool"

    def pool_worker(sweep: int, pid: int, command: str) -> bool:
        # The pool's workers are the fork server's children, the sweep's grandchildren.
        parents = {p: parent for p, parent, _ in processes()}
        return parents.get(parents.get(pid, 0), 0) == sweep

    err = run_killing_a_worker(sweep_args(space, out, "--workers", "2"), pool_worker)
    assert "a worker process died" in err

    trials = by_trial(out / "trials.csv")
    assert sorted(trials) == ["0", "1", "2", "3"]
    assert {r["status"] for r in trials.values()} == {"ok"}
    summary = json.loads((out / "sweep.json").read_text())
    assert summary["counts"] == {"ok": 4, "failed": 0, "skipped": 0}
    best = str(summary["best"]["trial"])
    for name in ("report.html", "heatmap.png", "objective_vs_min_drop_pct.png"):
        assert (out / name).is_file()

    # best.toml is the strategy's own config file: check-config takes it, and a backtest on
    # it gives the best trial's metrics to the last digit.
    (out / "magellan.toml").write_text(CONFIG)
    magellan("check-config", str(out / "magellan.toml"))
    direct = tmp_path / "direct"
    magellan(
        "backtest",
        "--bars",
        str(BARS_DIR),
        *CRASH,
        "--config",
        str(out / "magellan.toml"),
        "--out",
        str(direct),
        "--quiet",
    )
    metrics = json.loads((direct / "summary.json").read_text())["run"]["metrics"]
    assert metrics["trades"] >= 1
    for key, value in metrics.items():
        assert trials[best][key] == format_value(value), key

    # The same grid as Ray tasks on a real local instance, one of its workers killed
    # mid-trial (Ray retries the task): the same rows, each trial once.
    on_ray = tmp_path / "ray"
    run_killing_a_worker(
        sweep_args(space, on_ray, "--ray-address", "local", "--workers", "2"),
        lambda sweep, pid, command: command.startswith("ray::_ray_trial"),
    )
    assert by_trial(on_ray / "trials.csv") == trials
    assert "Ray cluster at local" in json.loads((on_ray / "sweep.json").read_text())["where"]
