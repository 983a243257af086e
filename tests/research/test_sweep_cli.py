"""``magellan sweep``'s input: every bad one refused with exit 2 and one line before a trial
runs, and a combination the model refuses skipped and counted."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from magellan_daemon.cli.main import main
from tests.research.sweep_runs import GRID, by_trial, sweep_args, write


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
