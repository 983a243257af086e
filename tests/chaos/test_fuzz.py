"""Bad input through the daemon's real edges (tests/chaos/fuzz.py), a few hundred inputs per
target in ``make test``; ``make chaos`` runs more. Each input must be refused or dropped
with a warning, never crash the handler or reach the ledger or a strategy."""

from __future__ import annotations

import logging

import pytest

from tests.chaos.fuzz import TARGETS, FuzzResult, fuzz_target

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
