"""The daemon through corporate actions against the simulator (which applies them as
Alpaca would, at 00:00 New York of the ex-date).

- Bear Trap: MULN's crash entry on the 15:43 bar of 2024-12-09 rests under its protective
  stop (never touched that day) when the daemon stops; a made-up 3-for-1 split of MULN on
  2024-12-10 (this test's own file) re-bases the position and cancels the stop at the
  broker; the daemon started that morning applies the split to the ledger, re-bases the
  trade plan and places the stop again at a third of its price, before the open. (The
  recorded bars of the 10th are not on the made-up scale: only the quantities and the stop
  are checked, and that the time stop then sells every post-split share.)
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest

from magellan_daemon.corporate_actions import load_corporate_actions
from tests.e2e.harness import Daemon, Sim, config_dir, ny, only, wait_for

pytestmark = [pytest.mark.timeout(240), pytest.mark.asyncio]


def _actions(tmp_path: Path, rows: list[str]):
    path = tmp_path / "corporate_actions.csv"
    path.write_text("symbol,type,ex_date,new_rate,old_rate,rate\n" + "\n".join(rows) + "\n")
    return load_corporate_actions(path)


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _open_stops(sim: Sim, symbol: str) -> list[dict]:
    return [
        o
        for o in sim.orders()
        if o["symbol"] == symbol
        and o["type"] == "stop"
        and o["status"] in ("new", "accepted", "held", "pending_new")
    ]


async def test_bear_trap_stop_placed_again_at_the_adjusted_price(
    bars_dir: Path, tmp_path: Path
) -> None:
    actions = _actions(tmp_path, ["MULN,forward_split,2024-12-10,3,1,"])
    config = config_dir(tmp_path, only("bear_trap"))
    async with Sim(bars_dir, ny("2024-12-09", "15:20"), corporate_actions=actions) as sim:
        daemon = Daemon(config, tmp_path / "state", sim.url, tmp_path / "daemon.log")
        daemon.start()
        await daemon.wait_ready()
        await sim.run_until(ny("2024-12-09", "15:47"), speed=300)
        await wait_for(lambda: _open_stops(sim, "MULN"), 30, "MULN's protective stop", daemon)
        assert await daemon.stop() == 0  # the position rests under its stop overnight
        (before,) = _open_stops(sim, "MULN")
        held = Decimal(before["qty"])
        assert sim.positions()["MULN"] == float(held)

        sim.jump(ny("2024-12-10", "08:30"))  # the simulator applied the split at 00:00
        assert sim.positions()["MULN"] == float(held * 3)
        assert _open_stops(sim, "MULN") == []  # canceled before the open

        daemon.start()
        await daemon.wait_ready()
        await wait_for(lambda: _open_stops(sim, "MULN"), 30, "the stop placed again", daemon)
        (after,) = _open_stops(sim, "MULN")
        assert Decimal(after["qty"]) == held * 3
        old_price = Decimal(before["stop_price"])
        # the plan's level divided by 3, each rounded to its tick: within a tick and a third
        assert abs(Decimal(after["stop_price"]) - old_price / 3) <= Decimal("0.0035")
        assert _t(after["submitted_at"]) < ny("2024-12-10", "09:30")
        rows = daemon.query(
            "SELECT qty FROM positions WHERE strategy = 'bear_trap' AND symbol = 'MULN'"
        )
        assert [Decimal(r["qty"]) for r in rows] == [held * 3]
        bookings = daemon.query("SELECT * FROM corporate_action_bookings")
        assert [(b["strategy"], b["qty_before"], b["qty_after"]) for b in bookings] == [
            ("bear_trap", str(held), str(held * 3))
        ]
        # The time stop sells the position at the open: every post-split share.
        await sim.run_until(ny("2024-12-10", "09:40"), speed=200)
        await wait_for(lambda: "MULN" not in sim.positions(), 30, "MULN sold", daemon)
        sells = [
            o
            for o in sim.orders()
            if o["symbol"] == "MULN" and o["side"] == "sell" and o["status"] == "filled"
        ]
        assert sum(Decimal(o["filled_qty"]) for o in sells) == held * 3
        assert (
            daemon.query(
                "SELECT qty FROM positions WHERE strategy = 'bear_trap' AND CAST(qty AS REAL) != 0"
            )
            == []
        )
        assert "DISCREPANCY" not in daemon.log_text()
        assert await daemon.stop() == 0
