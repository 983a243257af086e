"""``magellan sweep``'s figures (issue 22): trials per second with 1 worker and with every core
(the scaling efficiency), the same grid as Ray tasks on a local Ray instance (Ray's overhead
per trial against the process pool), a trial's time against the direct ``magellan backtest``
of its setting, and a sweep SIGKILLed mid-way then resumed (trials lost or run twice).

The grid: Bear Trap over two weeks of the shared minute bars with crash days, 16 settings,
each trial about a second or more. Trials per second are ``sweep.json``'s (the trials run over
the sweep's wall time, the workers already started and holding the bars).
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, SHARED_BARS, machine, median, report

ROUNDS = 2
RANGE = ["--start", "2024-05-13", "--end", "2024-05-24"]
SPACE = """[bear_trap]
min_drop_pct = [0.10, 0.12, 0.15, 0.18]
stop_atr_multiple = [0.3, 0.45, 0.6, 0.9]
"""
CONFIG = """
[accounts.main]
key_env = "APCA_API_KEY_ID"
secret_env = "APCA_API_SECRET_KEY"
[strategies.bear_trap]
config = "best.toml"
account = "main"
"""


def magellan(*args: str) -> float:
    """Run one ``magellan`` command; its wall seconds."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "magellan_daemon", *args], cwd=REPO, check=True)
    return time.perf_counter() - started


def sweep(space: Path, out: Path, *extra: str) -> dict:
    magellan(
        "sweep", "--bars", str(SHARED_BARS), "--strategy", "bear_trap", *RANGE,
        "--space", str(space), "--out", str(out), "--min-trades", "0", "--quiet", *extra,
    )  # fmt: skip
    return json.loads((out / "sweep.json").read_text())


def mean_seconds(out: Path) -> float:
    """The mean time of a sweep's trials, each as ``trials.csv`` records it (inside the
    worker: the backtest alone)."""
    rows = trial_rows(out / "trials.csv")
    return sum(float(r["seconds"]) for r in rows) / len(rows)


def outside_trials(summary: dict, out: Path) -> float:
    """Seconds per trial that a worker slot spent outside the trial itself: the sweep's wall
    time times its slots, over its trials, less the mean trial. What the pool or Ray adds per
    trial (dispatch, arguments, results, recording), measured inside one run, so that the
    machine's speed of the moment cancels out."""
    slots = summary["workers"]
    return summary["wall_seconds"] * slots / summary["trials_run"] - mean_seconds(out)


def trial_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def killed_and_resumed(space: Path, out: Path, reference: list[dict[str, str]]) -> int:
    """Trials lost or recorded twice after a SIGKILL mid-sweep and a resume."""
    args = [
        sys.executable, "-m", "magellan_daemon", "sweep", "--bars", str(SHARED_BARS),
        "--strategy", "bear_trap", *RANGE, "--space", str(space), "--out", str(out),
        "--min-trades", "0", "--quiet", "--workers", "2",
    ]  # fmt: skip
    process = subprocess.Popen(args, cwd=REPO, start_new_session=True)
    file = out / "trials.csv"
    while process.poll() is None:
        if file.exists() and len(file.read_text().splitlines()) >= 4:
            break
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    subprocess.run(args, cwd=REPO, check=True)
    rows = trial_rows(file)
    numbers = [r["trial"] for r in rows]
    twice = len(numbers) - len(set(numbers))
    lost = len({r["trial"] for r in reference} - set(numbers))
    same = {r["trial"]: r["sharpe"] for r in rows} == {r["trial"]: r["sharpe"] for r in reference}
    print(f"  resumed: {len(rows)} rows, {lost} lost, {twice} twice, metrics same: {same}")
    return lost + twice + (0 if same else 1)


def main() -> int:
    print(f"# bench_sweep: {machine()}", flush=True)
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        space = folder / "space.toml"
        space.write_text(SPACE)
        one = sweep(space, folder / "one", "--workers", "1")
        # The pool and Ray in alternate rounds on this shared machine: the medians compare.
        every, on_ray = [], []
        for k in range(ROUNDS):
            every.append(sweep(space, folder / f"every{k}", "--workers", str(cores)))
            on_ray.append(
                sweep(space, folder / f"ray{k}", "--workers", str(cores), "--ray-address", "local")
            )
        trials = one["trials_run"]
        report("sweep trials/s, 1 worker", one["trials_per_second"], "trials/s", f"{trials} trials")
        pool_rate = median(r["trials_per_second"] for r in every)
        ray_rate = median(r["trials_per_second"] for r in on_ray)
        report(
            f"sweep trials/s, {cores} workers", pool_rate, "trials/s",
            f"{trials} trials, median of {ROUNDS}",
        )  # fmt: skip
        scaling = pool_rate / one["trials_per_second"]
        busy = median(
            1 - outside_trials(r, folder / f"every{k}") * r["trials_run"]
            / (r["wall_seconds"] * r["workers"])
            for k, r in enumerate(every)
        )  # fmt: skip
        slower = mean_seconds(folder / "every0") / mean_seconds(folder / "one")
        report(
            "sweep scaling efficiency (all cores / 1 worker / cores)", scaling / cores, "x",
            f"{scaling:.2f}x on {cores} cores; the pool's slots busy in trials {busy:.1%}; "
            f"a trial {slower:.2f}x as long with {cores} running as alone",
        )  # fmt: skip
        pool_extra = median(outside_trials(r, folder / f"every{k}") for k, r in enumerate(every))
        ray_extra = median(outside_trials(r, folder / f"ray{k}") for k, r in enumerate(on_ray))
        mean_trial = median(mean_seconds(folder / f"every{k}") for k in range(ROUNDS))
        report(
            "sweep Ray overhead per trial against the local pool",
            (ray_extra - pool_extra) / mean_trial * 100, "%",
            f"time outside the trial per trial: Ray {ray_extra * 1000:.0f} ms, pool "
            f"{pool_extra * 1000:.0f} ms, trials of {mean_trial:.2f} s; trials/s Ray "
            f"{ray_rate:.3f} vs pool {pool_rate:.3f} (medians of {ROUNDS})",
        )  # fmt: skip

        # One trial against the direct backtest of its setting (the best, from best.toml).
        out = folder / "one"
        (out / "magellan.toml").write_text(CONFIG)
        best = str(one["best"]["trial"])
        seconds = next(
            float(r["seconds"]) for r in trial_rows(out / "trials.csv") if r["trial"] == best
        )
        whole = magellan(
            "backtest", "--bars", str(SHARED_BARS), "--strategy", "bear_trap", *RANGE,
            "--config", str(out / "magellan.toml"), "--out", str(folder / "direct"), "--quiet",
        )  # fmt: skip
        summary = json.loads((folder / "direct" / "summary.json").read_text())
        same = summary["run"]["metrics"] == one["best"]["metrics"]
        report(
            "sweep trial / the same magellan backtest, time", seconds / whole, "x",
            f"trial {seconds:.2f} s, whole command {whole:.2f} s (its driven part "
            f"{summary['run']['seconds']:.2f} s); metrics identical: {same}",
        )  # fmt: skip

        reference = trial_rows(out / "trials.csv")
        bad = killed_and_resumed(space, folder / "killed", reference)
        report(
            "sweep resume after SIGKILL, trials lost or run twice",
            bad,
            "trials",
            f"{len(reference)} trials",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
