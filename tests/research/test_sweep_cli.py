"""``magellan sweep`` end to end on the shared bars: a grid on the local pool, each trial equal to
the direct ``magellan backtest`` of its setting, the same grid on a real local Ray instance,
optuna drawing the same trials after a SIGKILL as straight through, walk-forward, and every
bad input refused with exit 2 before a trial runs."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from magellan_daemon.cli.main import main
from magellan_daemon.research.space import format_value
from tests.conftest import BARS_DIR

REPO = Path(__file__).resolve().parents[2]
CRASH = ["--strategy", "bear_trap", "--start", "2024-05-14", "--end", "2024-05-15"]
GRID = """[bear_trap]
min_drop_pct = [0.10, 0.15]
stop_atr_multiple = { low = 0.3, high = 0.6, step = 0.3 }
"""
OPTUNA = "[bear_trap]\nmin_drop_pct = { low = 0.08, high = 0.2 }\nstop_atr_multiple = [0.3, 0.6]\n"
CONFIG = """
[accounts.main]
key_env = "APCA_API_KEY_ID"
secret_env = "APCA_API_SECRET_KEY"
[strategies.bear_trap]
config = "best.toml"
account = "main"
"""


def sweep_args(space: Path, out: Path, *extra: str) -> list[str]:
    return [
        "sweep",
        "--bars",
        str(BARS_DIR),
        *CRASH,
        "--space",
        str(space),
        "--out",
        str(out),
        "--min-trades",
        "1",
        "--quiet",
        *extra,
    ]


def magellan(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "magellan_daemon", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def by_trial(path: Path) -> dict[str, dict[str, str]]:
    found = rows(path)
    numbers = [r["trial"] for r in found]
    assert len(numbers) == len(set(numbers)), f"a trial recorded twice: {numbers}"
    return {r["trial"]: {k: v for k, v in r.items() if k != "seconds"} for r in found}


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def processes() -> list[tuple[int, int, str]]:
    """(pid, parent pid, command line) of every process on this machine, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue  # ended meanwhile
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        found.append((int(entry.name), parent, command))
    return found


def run_killing_a_worker(args: list[str], is_worker: Callable[[int, int, str], bool]) -> str:
    """Run ``magellan`` and SIGKILL one of its trial workers once one runs; its stderr."""
    process = subprocess.Popen(
        [sys.executable, "-m", "magellan_daemon", *args],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    killed = False
    while not killed and time.monotonic() < deadline and process.poll() is None:
        for pid, parent, command in processes():
            if is_worker(process.pid, pid, command) and parent != process.pid:
                time.sleep(0.3)  # into its trial
                os.kill(pid, signal.SIGKILL)
                killed = True
                break
        time.sleep(0.05)
    _, err = process.communicate(timeout=300)
    assert killed, "no worker was seen running"
    assert process.returncode == 0, err
    return err


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


def kill_after_first_row(args: list[str], out: Path) -> None:
    """Start the sweep, SIGKILL it once a trial is recorded (mid-sweep)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "magellan_daemon", *args],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # the kill takes its workers too, as a killed terminal would
    )
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and process.poll() is None:
            file = out / "trials.csv"
            if file.exists() and len(file.read_text().splitlines()) >= 2:
                break
            time.sleep(0.05)
        assert process.poll() is None, "the sweep ended before it could be killed"
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.mark.parametrize("search", ["grid", "optuna"])
def test_a_sweep_killed_mid_way_resumes_losing_nothing_and_running_nothing_twice(
    tmp_path: Path, search: str
) -> None:
    space = write(tmp_path / "space.toml", GRID if search == "grid" else OPTUNA)
    extra = ["--search", search, "--trials", "6", "--workers", "2"]
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


@pytest.mark.parametrize(
    ("space", "extra", "message"),
    [
        ("[bear_trap]\nmin_drop = [0.1]\n", [], "min_drop: unknown parameter"),
        ("[bear_trap]\nmin_drop_pct = [2.0]\n", [], "min_drop_pct: 2.0 is refused"),
        (
            "[bear_trap]\ntp1_fraction = [0.8]\ntp2_fraction = [0.5]\n",
            [],
            "every combination is refused",
        ),
        ("[bear_trap\n", [], "TOML syntax error"),
        (GRID, ["--walk-forward", "3M:1M"], "too short for one window"),
        (GRID, ["--walk-forward", "3:1"], "expected TRAIN:TEST"),
        (GRID, ["--trials", "0"], "--trials must be at least 1"),
        (GRID, ["--workers", "0"], "--workers must be at least 1"),
        (GRID, ["--config", "/nonexistent/magellan.toml"], "file not found"),
    ],
)
def test_bad_input_exits_2_with_one_line_before_any_trial(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    space: str,
    extra: list[str],
    message: str,
) -> None:
    out = tmp_path / "out"
    code = main(sweep_args(write(tmp_path / "space.toml", space), out, *extra))
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("magellan sweep: ") and err.count("\n") == 1
    assert message in err
    assert not (out / "trials.csv").exists()


def test_another_study_in_out_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "study.json").write_text(json.dumps({"strategy": "bear_trap", "start": "2020-01-01"}))
    code = main(sweep_args(write(tmp_path / "space.toml", GRID), out))
    assert code == 2
    assert "holds another study" in capsys.readouterr().err


def test_ray_address_without_ray_says_how_to_install_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the cluster extra were not installed
    code = main(
        sweep_args(write(tmp_path / "s.toml", GRID), tmp_path / "o", "--ray-address", "auto")
    )
    assert code == 2
    assert "pip install -e '.[cluster]'" in capsys.readouterr().err


def test_bars_that_are_not_a_folder_and_an_end_before_the_start_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space = write(tmp_path / "space.toml", GRID)
    args = sweep_args(space, tmp_path / "o")
    args[args.index("--bars") + 1] = str(tmp_path / "none")
    assert main(args) == 2
    assert "is not a directory" in capsys.readouterr().err
    args = sweep_args(space, tmp_path / "o")
    args[args.index("--end") + 1] = "2024-05-01"
    assert main(args) == 2
    assert "--end is before --start" in capsys.readouterr().err


def test_a_combination_the_model_refuses_is_skipped_and_counted_not_run(tmp_path: Path) -> None:
    space = write(
        tmp_path / "space.toml", "[bear_trap]\ntp1_fraction = [0.5, 0.8]\ntp2_fraction = [0.3]\n"
    )
    out = tmp_path / "out"
    assert main(sweep_args(space, out, "--workers", "1")) == 0
    trials = by_trial(out / "trials.csv")
    assert trials["0"]["status"] == "ok"
    assert trials["1"]["status"] == "skipped"
    assert "tp1_fraction + tp2_fraction = 1.1 exceeds 1" in trials["1"]["error"]
    assert trials["1"]["sharpe"] == ""
    counts = json.loads((out / "sweep.json").read_text())["counts"]
    assert counts == {"ok": 1, "failed": 0, "skipped": 1}
