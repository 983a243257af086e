"""2024-11-29 closes at 13:00: Bear Trap is flat by 12:55, the daily signal runs at 13:05.

Also the holiday before it: the 2024-11-27 signal's orders go out on 2024-11-29 at the open +
60 s, not on Thanksgiving (2024-11-28). GME's crash that day is synthetic (see bars.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e.bars import early_close_crash_bars
from tests.e2e.harness import (
    MINUTE,
    SPEED,
    Daemon,
    Sim,
    assert_stop_rested_until_exit,
    config_dir,
    ny,
    wait_for,
)

pytestmark = pytest.mark.timeout(240)


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_early_close_day(bars_dir: Path, tmp_path: Path) -> None:
    bars = early_close_crash_bars(bars_dir, tmp_path)
    async with Sim(bars, ny("2024-11-27", "15:50")) as sim:
        daemon = Daemon(config_dir(tmp_path), tmp_path / "state", sim.url, tmp_path / "d.log")
        daemon.start()
        await daemon.wait_ready()
        await sim.run_until(ny("2024-11-27", "16:10"))
        await wait_for(
            lambda: daemon.query("SELECT 1 FROM evaluations WHERE strategy='daily_trend'"),
            30,
            "the 2024-11-27 daily signal",
            daemon,
        )
        sim.jump(ny("2024-11-29", "09:25"))
        await sim.run_until(ny("2024-11-29", "09:40"))
        await sim.run_until(ny("2024-11-29", "12:25"), speed=5000)
        await sim.run_until(ny("2024-11-29", "13:10"), speed=SPEED / 2)  # the 12:55 exit
        sim.pause()
        broker_orders = sim.orders()
        assert await daemon.stop() == 0

    # The 11-27 signal's orders: sent on 11-29 at 09:31, never on Thanksgiving.
    intents = daemon.query("SELECT * FROM intents WHERE strategy='daily_trend'")
    first = [i for i in intents if _t(i["created_at"]) < ny("2024-11-28", "00:00")]
    assert first, "the 2024-11-27 signal produced no intent"
    for intent in first:
        assert _t(intent["not_before"]) == ny("2024-11-29", "09:31"), intent
    for order in daemon.query("SELECT * FROM orders WHERE strategy='daily_trend'"):
        assert _t(order["created_at"]) >= ny("2024-11-29", "09:31"), order

    # Bear Trap: GME entered on the 12:32 bar, sold at 12:55 (end of day), flat right after.
    bt = daemon.query("SELECT * FROM orders WHERE strategy='bear_trap' ORDER BY created_at")
    entry = next(o for o in bt if o["leg"] == "entry")
    assert entry["symbol"] == "GME" and _t(entry["signal_time"]) == ny("2024-11-29", "12:32")
    sells = [o for o in bt if o["side"] == "sell" and o["leg"] != "protective_stop"]
    assert [o["leg"] for o in sells] == ["eod"]
    assert ny("2024-11-29", "12:55") <= _t(sells[0]["created_at"]) < ny("2024-11-29", "12:56")
    last_fill = daemon.query(
        "SELECT MAX(ts) AS ts FROM fills WHERE strategy='bear_trap' AND side='sell'"
    )[0]["ts"]
    assert _t(last_fill) <= ny("2024-11-29", "12:55") + 2 * MINUTE
    assert (
        daemon.query(
            "SELECT 1 FROM positions WHERE strategy='bear_trap' AND CAST(qty AS REAL) != 0"
        )
        == []
    )
    # Its protective stop was cancelled before the final sell.
    stops = [o for o in bt if o["leg"] == "protective_stop"]
    assert stops and all(o["status"] in ("canceled", "replaced") for o in stops)
    assert_stop_rested_until_exit(broker_orders, "GME")

    # The daily signal of the early-close day was planned for 13:05 (close + 5 minutes), ran
    # then (never before; at 1000x a loaded machine may start it a virtual minute or two late)
    # and evaluated that day's bars.
    assert "job daily signal (planned 2024-11-29 13:05:00 ET)" in daemon.log_text()
    recorded = [
        _t(e["recorded_at"])
        for e in daemon.query(
            "SELECT recorded_at FROM evaluations WHERE strategy='daily_trend' AND bar_time LIKE "
            "'2024-11-29%'"
        )
    ]
    assert recorded
    signal = ny("2024-11-29", "13:05")
    assert all(signal <= r < signal + timedelta(minutes=5) for r in recorded), recorded
