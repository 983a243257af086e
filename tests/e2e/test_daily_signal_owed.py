"""A daemon started between the close and close + 5 min still owes that session's signal.

Tuesday 2024-11-26 closes at 16:00; its daily signal runs at 16:05 and its orders go out on
Wednesday at 09:31. Started at 16:00:30 or 16:04:59 (with virtual time moving during the
startup's fetches), the daemon used to fetch the completed 11-26 bar in its warm-up, mark it
seen, and then find "nothing new" at 16:05 (or plan no signal job at all): no evaluation, no
intents, a silent 09:31 job. The session the next signal owns is decided from the calendar,
its bar is kept out of the warm-up, and its signal runs at max(now, 16:05).
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import pytest

from tests.e2e.harness import Daemon, Sim, config_dir, ny, only, wait_for

pytestmark = pytest.mark.timeout(240)


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.mark.parametrize("start", ["16:00:30", "16:04:59"])
async def test_the_owed_daily_signal_runs_and_is_sent_at_the_next_open(
    start: str, bars_dir: Path, tmp_path: Path
) -> None:
    async with Sim(bars_dir, ny("2024-11-26", start)) as sim:
        daemon = Daemon(
            config_dir(tmp_path, only("daily_trend")), tmp_path / "s", sim.url, tmp_path / "d.log"
        )
        sim.clock.set_speed(20)  # the clock moves while the daemon starts and fetches
        daemon.start()
        await daemon.wait_ready()
        await sim.run_until(ny("2024-11-26", "16:10"))
        await wait_for(
            lambda: daemon.query(
                "SELECT 1 FROM evaluations WHERE strategy='daily_trend' AND bar_time LIKE "
                "'2024-11-26%'"
            ),
            30,
            "the 2024-11-26 evaluations",
            daemon,
        )
        sim.jump(ny("2024-11-27", "09:25"))
        await sim.run_until(ny("2024-11-27", "09:40"))
        await wait_for(
            lambda: not daemon.query("SELECT 1 FROM intents WHERE status='pending'"),
            30,
            "the pending intents sent",
            daemon,
        )
        sim.pause()
        assert await daemon.stop() == 0

    evaluated = daemon.query(
        "SELECT symbol FROM evaluations WHERE strategy='daily_trend' AND bar_time LIKE "
        "'2024-11-26%'"
    )
    assert len(evaluated) >= 9  # every symbol with a daily bar that day (GLD has none)
    intents = daemon.query("SELECT * FROM intents WHERE signal_time LIKE '2024-11-26%'")
    assert intents, "the 2024-11-26 signal produced no intent"
    for intent in intents:
        assert _t(intent["not_before"]) == ny("2024-11-27", "09:31"), intent
        assert intent["status"] in ("sent", "blocked"), intent
    orders = daemon.query("SELECT * FROM orders WHERE strategy='daily_trend'")
    assert orders and all(_t(o["created_at"]) >= ny("2024-11-27", "09:31") for o in orders)
    log = daemon.log_text()
    # Planned at max(now, 16:05): 16:05 exactly when READY came before it; otherwise the
    # moment of READY, which at 20x depends on how many wall seconds the startup took.
    planned = re.search(r"job daily signal \(planned 2024-11-26 (\d\d:\d\d:\d\d) ET\)", log)
    assert planned is not None, "no daily signal job ran for 2024-11-26"
    if start == "16:00:30":
        assert planned.group(1) == "16:05:00"
    else:
        assert "16:05:00" <= planned.group(1) < "16:10:00"
    assert "taken as warm-up by this start" not in log


async def test_a_restart_after_the_daily_signal_finds_it_done_and_logs_no_error(
    bars_dir: Path, tmp_path: Path
) -> None:
    """Restarted that evening, before the next open, the daemon still owes the 11-26 signal
    by the calendar, but its saved state shows the bars evaluated by the run before: the
    owed job says so and evaluates nothing again. It used to log an ERROR ("already consumed
    (by warm-up?)"), at every such restart, for a normal event."""
    async with Sim(bars_dir, ny("2024-11-26", "15:55")) as sim:
        daemon = Daemon(
            config_dir(tmp_path, only("daily_trend")), tmp_path / "s", sim.url, tmp_path / "d.log"
        )
        daemon.start()
        await daemon.wait_ready()
        await sim.run_until(ny("2024-11-26", "16:10"))
        evaluations = (
            "SELECT * FROM evaluations WHERE strategy='daily_trend' AND bar_time LIKE '2024-11-26%'"
        )
        await wait_for(lambda: daemon.query(evaluations), 30, "the 11-26 evaluations", daemon)
        sim.pause()
        assert await daemon.stop() == 0
        evaluated = daemon.query(evaluations)
        intents = daemon.query("SELECT * FROM intents WHERE signal_time LIKE '2024-11-26%'")

        sim.jump(ny("2024-11-26", "20:00"))
        daemon.start()
        await daemon.wait_ready()
        await daemon.wait_log("daily signal for 2024-11-26: already evaluated before this start")
        assert " ERROR " not in daemon.current_log()
        assert daemon.query(evaluations) == evaluated
        assert daemon.query("SELECT * FROM intents WHERE signal_time LIKE '2024-11-26%'") == intents
        assert await daemon.stop() == 0
