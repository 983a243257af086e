"""The broker refuses Bear Trap's end-of-day sell: the daemon protects the position, tries
again at the next minute, and every other strategy and symbol keeps trading.

2024-11-29 closes at 13:00; GME's crash that day is synthetic (see bars.py): Bear Trap
enters on the 12:32 bar and must be flat by 12:55. At 12:54 the broker is told to refuse the
next order (403): that is the EOD sell. Before, the refusal was reported to the strategy from
inside the router's lane for GME, and the strategy's answer (a new stop) waited for that same
lane: the router and the minute clock hung for good. Now the refusal is posted to the
strategy, its new stop queued, and the exit decided again one minute later. The cancel takes
30 virtual seconds at the broker here, so a sell sent before the cancel is confirmed would
be refused for shares held.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from tests.e2e.bars import early_close_crash_bars
from tests.e2e.harness import SPEED, Daemon, Sim, config_dir, ny, wait_for

pytestmark = pytest.mark.timeout(240)


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_a_refused_bear_trap_exit_is_protected_and_retried(
    bars_dir: Path, tmp_path: Path
) -> None:
    bars = early_close_crash_bars(bars_dir, tmp_path)
    async with Sim(bars, ny("2024-11-29", "12:20"), cancel_latency=30.0) as sim:
        daemon = Daemon(config_dir(tmp_path), tmp_path / "state", sim.url, tmp_path / "d.log")
        daemon.start()
        await daemon.wait_ready()
        await sim.run_until(ny("2024-11-29", "12:54:30"), speed=SPEED / 2)
        await wait_for(
            lambda: daemon.query(
                "SELECT 1 FROM positions WHERE strategy='bear_trap' AND CAST(qty AS REAL) > 0"
            ),
            30,
            "the GME position",
            daemon,
        )
        sim.exchange.faults.update(refuse_next_orders=1)
        await sim.run_until(ny("2024-11-29", "13:10"), speed=SPEED / 2)
        sim.pause()
        await wait_for(
            lambda: daemon.query(
                "SELECT 1 FROM evaluations WHERE strategy='daily_trend' AND bar_time LIKE "
                "'2024-11-29%'"
            ),
            30,
            "the 13:05 daily signal",
            daemon,
        )
        broker_orders = sim.orders()
        positions = sim.positions()
        assert await daemon.stop() == 0

    gme = [o for o in broker_orders if o["symbol"] == "GME"]
    sells = [o for o in gme if o["side"] == "sell" and o["type"] == "market"]
    # The first EOD sell was refused (403: not even an order at the broker), the second,
    # one minute later, filled before the close.
    assert [o["status"] for o in sells] == ["filled"], sells
    assert ny("2024-11-29", "12:56") <= _t(sells[0]["submitted_at"]) < ny("2024-11-29", "13:00")
    assert "GME" not in positions
    # Protected all along: a stop rested until the final sell, placed again after the refusal.
    stops = sorted((o for o in gme if o["type"] == "stop"), key=lambda o: o["submitted_at"])
    assert len(stops) >= 2 and all(o["status"] == "canceled" for o in stops), stops
    assert _t(sells[0]["submitted_at"]) >= max(_t(o["canceled_at"]) for o in stops)
    log = daemon.log_text()
    assert "held by the protective stop" not in log  # never a sell before the cancel
    refusals = daemon.query(
        "SELECT * FROM orders WHERE strategy='bear_trap' AND leg='eod' AND status='rejected'"
    )
    assert len(refusals) == 1
    # Every other strategy went on: the daily signal ran at 13:05.
    assert "job daily signal (planned 2024-11-29 13:05:00 ET)" in log
    assert daemon.query("SELECT * FROM discrepancies") == []
