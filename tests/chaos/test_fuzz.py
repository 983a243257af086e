"""Bad input through the daemon's real edges (tests/chaos/fuzz.py), a few hundred inputs per
target in ``make test``; ``make chaos`` runs more. Each input must be refused or dropped
with a warning, never crash the handler or reach the ledger or a strategy."""

from __future__ import annotations

import logging

import pytest

from tests.chaos.fuzz import TARGETS, FuzzResult, check_config, fuzz_target
from tests.e2e.harness import REPO

EXAMPLES = 150


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_bad_input_is_dropped_and_the_daemon_survives(
    target: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.CRITICAL)  # thousands of expected warnings
    result = FuzzResult()
    fuzz_target(target, EXAMPLES, 0, result)
    assert result.tried[target] >= EXAMPLES
    assert result.crashes == []


@pytest.mark.parametrize("value", ["inf", "nan", "-inf"])
def test_a_config_number_that_is_not_finite_is_refused_naming_its_field(value: str) -> None:
    """Found by the config fuzzing: ``max_position_dollars = inf`` passed ``gt=0`` and loaded
    (Bear Trap's sizing then failed on every signal)."""
    edit = ("bear_trap.toml", _line_of("bear_trap.toml", "max_position_dollars"), f"value:{value}")
    check_config(edit)


def _line_of(name: str, key: str) -> int:
    lines = (REPO / "configs" / name).read_text().splitlines()
    return next(i for i, line in enumerate(lines) if line.startswith(f"{key} ="))
