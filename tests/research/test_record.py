"""``trials.csv`` and ``study.json``: whole rows only, each trial once, one study per folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from magellan_daemon.research.record import StudyMismatch, TrialsFile, claim, release
from magellan_daemon.research.space import Parameter
from magellan_daemon.research.trial import TrialResult

PARAMS = (Parameter("min_drop_pct", integer=False, values=(0.1, 0.15)), Parameter("n", True))


def result(number: int, status: str = "ok") -> TrialResult:
    metrics = {"sharpe": 1.2345678901234567, "trades": 12, "max_drawdown_start": "2024-05-13"}
    return TrialResult(
        number,
        status,  # type: ignore[arg-type]
        1.5,
        {"min_drop_pct": 0.15, "n": 3},
        metrics=metrics if status == "ok" else {},
        error="" if status == "ok" else 'ValueError: a "quoted", comma',
    )


def test_rows_read_back_equal_what_was_written(tmp_path: Path) -> None:
    record = TrialsFile(tmp_path / "trials.csv", PARAMS)
    assert record.open() == {}
    record.append(result(0))
    record.append(result(1, "failed"))
    kept = TrialsFile(tmp_path / "trials.csv", PARAMS).open()
    assert kept[0].values == {"min_drop_pct": 0.15, "n": 3}
    assert kept[0].metrics["sharpe"] == 1.2345678901234567  # exact: floats as repr
    assert kept[0].metrics["trades"] == 12
    assert kept[0].metrics["max_drawdown_start"] == "2024-05-13"
    assert kept[1].status == "failed"
    assert kept[1].error == 'ValueError: a "quoted", comma'


def test_a_partial_last_row_and_a_repeated_row_are_dropped_and_the_file_rewritten(
    tmp_path: Path,
) -> None:
    path = tmp_path / "trials.csv"
    record = TrialsFile(path, PARAMS)
    record.open()
    record.append(result(0))
    record.append(result(0))
    whole = path.read_text()
    path.write_text(whole + "1,ok,2.0,0.1,4,0.5")  # killed in the middle of a row
    kept = TrialsFile(path, PARAMS).open()
    assert list(kept) == [0]
    lines = path.read_text().splitlines()
    assert len(lines) == 2  # the header and trial 0, once
    assert path.read_text().endswith("\n")


def test_a_file_of_another_study_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "trials.csv"
    TrialsFile(path, PARAMS).open()
    with pytest.raises(StudyMismatch, match="other columns"):
        TrialsFile(path, PARAMS[:1]).open()


def test_a_folder_holds_one_study(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert claim(out, {"space": {"a": [1]}, "start": "2024-01-01"}) is False
    assert claim(out, {"space": {"a": [1]}, "start": "2024-01-01"}) is True
    with pytest.raises(StudyMismatch, match=r"another study \(space, start differ\)"):
        claim(out, {"space": {"a": [2]}, "start": "2024-02-01"})


def test_a_folder_in_use_by_another_sweep_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    identity = {"space": {"a": [1]}}
    claim(out, identity)
    # Another process (a second magellan sweep on the same --out) is refused while this
    # one holds the folder, and let in once it lets go.
    probe = [
        sys.executable,
        "-c",
        "import sys; from pathlib import Path; "
        "from magellan_daemon.research.record import claim; "
        f"claim(Path({str(out)!r}), {identity!r})",
    ]
    refused = subprocess.run(probe, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0
    assert "in use by another magellan sweep" in refused.stderr
    release(out)
    assert subprocess.run(probe, capture_output=True, text=True, timeout=60).returncode == 0
