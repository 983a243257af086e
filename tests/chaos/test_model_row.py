"""The "model-based examples" row of ``make chaos``: the examples hypothesis ran and the
failures, read from a real pytest run of a state machine; 0 and a note when it is absent."""

from __future__ import annotations

from pathlib import Path

from tests.chaos.run import run_model

MACHINE = """
import os
from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule


class Counter(RuleBasedStateMachine):
    total = 0

    @rule(x=st.integers(0, 3))
    def add(self, x):
        self.total += x

    @invariant()
    def bounded(self):
        assert self.total < LIMIT


Counter.TestCase.settings = settings(
    max_examples=int(os.environ["MAGELLAN_MODEL_EXAMPLES"]), derandomize=True, deadline=None
)
TestCounter = Counter.TestCase
"""


def test_the_examples_run_and_the_failures_are_counted(tmp_path: Path) -> None:
    holds = tmp_path / "test_holds.py"
    holds.write_text(MACHINE.replace("LIMIT", "10**9"))
    result = run_model(60, str(holds))
    assert (result.examples, result.failures, result.note) == (60, 0, "")
    breaks = tmp_path / "test_breaks.py"
    breaks.write_text(MACHINE.replace("LIMIT", "5"))
    result = run_model(60, str(breaks))
    assert result.failures == 1 and "FAILED" in result.note


def test_an_absent_model_test_is_0_examples_and_said(tmp_path: Path) -> None:
    result = run_model(2000, str(tmp_path / "test_exit_machine.py"))
    assert (result.examples, result.failures) == (0, 0)
    assert "does not exist on this branch" in result.note
