"""The engine's results do not change: ``magellan backtest`` on the shared bars gives the
golden ``trades.csv`` fill by fill and every value of ``summary.json`` but wall clock.

The golden files were written by the engine before its speed work
(``python -m tests.backtest.golden_cases``); a change of behaviour that is meant must
rewrite them in a commit that says why. The every-bar cases run under ``pytest -m long``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.backtest.golden_cases import CASES, Case, golden_path, read_golden, run_case


def _param(case: Case) -> object:
    # Every-bar Hourly Swing takes minutes on a busy machine; a timeout that fires inside a
    # lane crashes that lane and the run goes on without it (it looks like a divergence).
    marks = (
        [pytest.mark.long, pytest.mark.timeout(3600)] if case.long else [pytest.mark.timeout(300)]
    )
    return pytest.param(case, id=case.name, marks=marks)


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_backtest_gives_the_golden_fills_and_summary(case: Case, tmp_path: Path) -> None:
    if not golden_path(case, "trades.csv").exists():
        pytest.skip(f"no golden files for {case.name}")
    trades, summary = run_case(case, tmp_path)
    want = read_golden(case, "trades.csv").splitlines()
    got = trades.splitlines()
    for i, (w, g) in enumerate(zip(want, got, strict=False)):
        assert g == w, f"fill {i} differs"
    assert len(got) == len(want)
    golden = json.loads(read_golden(case, "summary.json"))
    assert summary == golden
