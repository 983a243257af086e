"""The short chaos run of ``make test``: one seeded scenario (the MULN crash of 2024-11-15,
the 16:05 daily signal, Monday's open) with fault episodes, SIGKILLs and restarts, and every
invariant checked at the close and after the clean stop. ``make chaos`` runs many more.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos.plan import make_plan
from tests.chaos.scenario import Scenario

pytestmark = pytest.mark.timeout(300)
SEED = 0  # window 2024-11-15; its plan kills the daemon four times


async def test_a_seeded_chaos_scenario_keeps_every_invariant(
    bars_dir: Path, tmp_path: Path
) -> None:
    plan = make_plan(SEED)
    outcome = await Scenario(plan, bars_dir, tmp_path).run()
    assert outcome.orders > 0 and sum(outcome.kills.values()) >= 2, outcome
    assert sum(outcome.faults.values()) >= 10, outcome
    assert outcome.violations == []
