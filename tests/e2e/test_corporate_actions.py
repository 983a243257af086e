"""The daemon through corporate actions against the simulator (which applies them as
Alpaca would, at 00:00 New York of the ex-date).

- Hourly Swing enters NVDA on the 10:00 bar of 2024-06-03 and holds it across its 10-for-1
  split of 2024-06-10 (the shared corporate-actions file): no sell on the split day (on raw
  bars it sold at 10:00 with RSI 5.76), the broker and the ledger both hold ten times the
  shares, and the exit on the 10:00 bar of 2024-06-21 sells all of them. The daemon runs
  through the night of the split (the position watch's first sight of the new quantity
  applies it) and is restarted after it: applied once. NVDA's real $0.01 dividend
  (ex 2024-06-11, this test's own file) is booked to Hourly Swing.
- Bear Trap: MULN's crash entry on the 15:43 bar of 2024-12-09 rests under its protective
  stop (never touched that day) when the daemon stops; a made-up split of MULN on
  2024-12-10 (this test's own file and bars: the recorded bars from the 10th on the split's
  scale), 3-for-1 or 1-for-20 (with cash in lieu), re-bases the position and cancels the
  stop at the broker; the daemon started that morning (before the ledger applied the split)
  applies it, re-bases the trade plan and places the stop again at the adjusted price
  before the open; the exit at the open (the position guard's opening auction: an intraday
  position that outlived its session) sells every post-split share.
"""

from __future__ import annotations

import csv
import gzip
import json
from datetime import date, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path

import pytest

from magellan_core.corporate_actions import load_corporate_actions
from magellan_daemon.timefmt import session_date as new_york_date
from magellan_sim.market.calendar import SessionCalendar
from tests.conftest import SHARED_DATA
from tests.e2e.harness import KEY, Daemon, Sim, config_dir, ny, only, wait_for

# Whole trading days through a split in a real daemon process (about 4 minutes together):
# ``make chaos`` runs them; ``make test`` covers the same mechanisms in-process
# (tests/backtest/test_backtest_corporate_actions.py,
# tests/daemon/reconciliation/test_reconcile_splits.py, …).
pytestmark = [pytest.mark.timeout(400), pytest.mark.asyncio, pytest.mark.long]
FAST = 4000.0  # virtual seconds per wall second through the sessions between checkpoints


def _actions(tmp_path: Path, rows: list[str]):
    path = tmp_path / "corporate_actions.csv"
    path.write_text("symbol,type,ex_date,new_rate,old_rate,rate\n" + "\n".join(rows) + "\n")
    return load_corporate_actions(path)


def split_bars(real: Path, tmp: Path, symbol: str, ex_date: date, ratio: float) -> Path:
    """A bars dir like ``real`` (linked) whose ``symbol`` minute bars from ``ex_date`` on
    are on the scale of a made-up split of ``ratio`` (prices divided, volumes multiplied),
    as the recorded bars after a real split are."""
    out = tmp / "bars"
    for timeframe in ("1Day", "1Hour", "1Min"):
        (out / timeframe).mkdir(parents=True, exist_ok=True)
        for source in (real / timeframe).glob("*.csv.gz"):
            if not (timeframe == "1Min" and source.name == f"{symbol}.csv.gz"):
                (out / timeframe / source.name).symlink_to(source)
    with gzip.open(real / "1Min" / f"{symbol}.csv.gz", "rt", newline="") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    cols = {name: header.index(name) for name in ("open", "high", "low", "close", "volume")}
    for r in body:
        if new_york_date(_t(r[0])) >= ex_date:
            for name in ("open", "high", "low", "close"):
                r[cols[name]] = f"{float(r[cols[name]]) / ratio:.4f}"
            r[cols["volume"]] = str(round(float(r[cols["volume"]]) * ratio))
    with gzip.open(out / "1Min" / f"{symbol}.csv.gz", "wt", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(body)
    return out


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _stops_since(sim: Sim, t: datetime) -> list[dict]:
    """MULN's stop orders submitted at ``t`` or later, whatever their status now."""
    return [
        o
        for o in sim.orders()
        if o["symbol"] == "MULN" and o["type"] == "stop" and _t(o["submitted_at"]) >= t
    ]


def _open_stops(sim: Sim, symbol: str) -> list[dict]:
    return [
        o
        for o in sim.orders()
        if o["symbol"] == symbol
        and o["type"] == "stop"
        and o["status"] in ("new", "accepted", "held", "pending_new")
    ]


@pytest.mark.parametrize(
    ("row", "ratio"),
    [
        ("forward_split,2024-12-10,3,1,", Decimal(3)),
        ("reverse_split,2024-12-10,1,20,", Decimal("0.05")),
    ],
)
async def test_bear_trap_stop_placed_again_at_the_adjusted_price(
    bars_dir: Path, tmp_path: Path, row: str, ratio: Decimal
) -> None:
    actions = _actions(tmp_path, [f"MULN,{row}"])
    bars = split_bars(bars_dir, tmp_path, "MULN", date(2024, 12, 10), float(ratio))
    config = config_dir(tmp_path, only("bear_trap"))
    async with Sim(bars, ny("2024-12-09", "15:20"), corporate_actions=actions) as sim:
        daemon = Daemon(config, tmp_path / "state", sim.url, tmp_path / "daemon.log")
        daemon.start()
        await daemon.wait_ready()
        await sim.run_until(ny("2024-12-09", "15:47"), speed=300)
        await wait_for(lambda: _open_stops(sim, "MULN"), 30, "MULN's protective stop", daemon)
        assert await daemon.stop() == 0  # the position rests under its stop overnight
        (before,) = _open_stops(sim, "MULN")
        held = Decimal(before["qty"])
        assert sim.positions()["MULN"] == float(held)

        split_at = ny("2024-12-10", "00:00")
        sim.jump(ny("2024-12-10", "08:30"))  # the simulator applied the split at 00:00
        after_split = (held * ratio).to_integral_value(rounding=ROUND_FLOOR)
        assert sim.positions()["MULN"] == float(after_split)
        assert _open_stops(sim, "MULN") == []  # canceled before the open

        daemon.start()
        await daemon.wait_ready()
        # Placed again at once (the position guard may then cancel it for its own exit at
        # the opening auction: the broker's orders are read whatever became of them).
        await wait_for(lambda: _stops_since(sim, split_at), 30, "the stop placed again", daemon)
        (after,) = _stops_since(sim, split_at)
        assert Decimal(after["qty"]) == after_split
        old_price = Decimal(before["stop_price"])
        # the plan's level on the new scale; each price rounded to its tick
        tick = Decimal("0.01") / ratio + Decimal("0.01")
        assert abs(Decimal(after["stop_price"]) - old_price / ratio) <= tick
        assert _t(after["submitted_at"]) < ny("2024-12-10", "09:30")
        rows = daemon.query(
            "SELECT qty FROM positions WHERE strategy = 'bear_trap' AND symbol = 'MULN'"
        )
        assert [Decimal(r["qty"]) for r in rows] == [after_split]
        (booking,) = daemon.query("SELECT * FROM corporate_action_bookings")
        assert (booking["strategy"], booking["qty_before"], booking["qty_after"]) == (
            "bear_trap",
            str(held),
            str(after_split),
        )
        lieu = sim.exchange.accounts.activities(KEY, activity_types=["CIL"], direction="asc")
        paid = sum((Decimal(a["net_amount"]) for a in lieu), Decimal(0))
        assert Decimal(booking["cash"]) == paid
        assert (paid > 0) == (after_split != held * ratio)
        # The exit at the open (the guard's opening auction) sells every post-split share.
        await sim.run_until(ny("2024-12-10", "09:40"), speed=200)
        await wait_for(lambda: "MULN" not in sim.positions(), 30, "MULN sold", daemon)
        sells = [
            o
            for o in sim.orders()
            if o["symbol"] == "MULN" and o["side"] == "sell" and o["status"] == "filled"
        ]
        assert sum(Decimal(o["filled_qty"]) for o in sells) == after_split
        assert (
            daemon.query(
                "SELECT qty FROM positions WHERE strategy = 'bear_trap' AND CAST(qty AS REAL) != 0"
            )
            == []
        )
        assert "DISCREPANCY" not in daemon.log_text()
        assert await daemon.stop() == 0


def _nvda(daemon: Daemon) -> Decimal:
    rows = daemon.query(
        "SELECT qty FROM positions WHERE strategy = 'hourly_swing' AND symbol = 'NVDA'"
    )
    return Decimal(rows[0]["qty"]) if rows else Decimal(0)


async def _sessions(sim: Sim, first: date, last: date) -> None:
    """Run every session from ``first`` to ``last`` to 16:15 ET, jumping over the nights."""
    calendar = SessionCalendar()
    day = first
    while day <= last:
        if calendar.session(day) is not None:
            start = ny(day.isoformat(), "09:25")
            if sim.clock.now() < start:
                sim.jump(start)
            await sim.run_until(ny(day.isoformat(), "16:15"), speed=FAST)
        day += timedelta(days=1)


def _nvda_prev_close(daemon: Daemon) -> float:
    (row,) = daemon.query("SELECT state FROM strategy_state WHERE strategy = 'hourly_swing'")
    return json.loads(row["state"])["strategy"]["symbols"]["NVDA"]["rsi"]["prev_close"]


async def test_hourly_swing_carries_nvda_through_its_split(bars_dir: Path, tmp_path: Path) -> None:
    shared = (SHARED_DATA / "corporate_actions.csv").read_text().splitlines()[1:]
    actions = _actions(tmp_path, [*shared, "NVDA,cash_dividend,2024-06-11,,,0.01"])
    config = config_dir(tmp_path, only("hourly_swing"))
    async with Sim(bars_dir, ny("2024-06-03", "10:30"), corporate_actions=actions) as sim:
        daemon = Daemon(config, tmp_path / "state", sim.url, tmp_path / "daemon.log")
        daemon.start()
        await daemon.wait_ready()
        await sim.run_until(ny("2024-06-03", "11:05"), speed=1000)
        await wait_for(lambda: _nvda(daemon) > 0, 30, "the NVDA entry", daemon)
        held = _nvda(daemon)
        await _sessions(sim, date(2024, 6, 3), date(2024, 6, 7))
        assert _nvda(daemon) == held and sim.positions()["NVDA"] == float(held)

        # The simulator splits NVDA at 00:00 of Monday; the running daemon sees the broker's
        # new quantity and applies the split before the open, without a discrepancy.
        sim.jump(ny("2024-06-10", "06:00"))
        assert sim.positions()["NVDA"] == float(held * 10)
        await sim.run_until(ny("2024-06-10", "09:10"), speed=1000)
        await wait_for(lambda: _nvda(daemon) == held * 10, 30, "the split in the ledger", daemon)
        assert 50 < _nvda_prev_close(daemon) < 200  # Friday's close on the new scale
        assert await daemon.stop() == 0
        daemon.start()  # a restart after the split was applied: nothing is applied twice
        await daemon.wait_ready()
        assert _nvda(daemon) == held * 10
        assert 50 < _nvda_prev_close(daemon) < 200
        splits = daemon.query("SELECT * FROM corporate_action_bookings WHERE kind = 'split'")
        assert [(b["strategy"], b["qty_before"], b["qty_after"]) for b in splits] == [
            ("hourly_swing", str(held), str(held * 10))
        ]

        await _sessions(sim, date(2024, 6, 10), date(2024, 6, 20))
        sells = [o for o in sim.orders() if o["symbol"] == "NVDA" and o["side"] == "sell"]
        assert sells == []  # held through the split (on raw bars: sold at 10:00 on the 10th)
        assert _nvda(daemon) == held * 10 and sim.positions()["NVDA"] == float(held * 10)
        (dividend,) = daemon.query(
            "SELECT * FROM corporate_action_bookings WHERE kind = 'cash_dividend'"
        )
        assert (dividend["strategy"], Decimal(dividend["cash"])) == (
            "hourly_swing",
            held * 10 * Decimal("0.01"),
        )

        sim.jump(ny("2024-06-21", "09:25"))
        await sim.run_until(ny("2024-06-21", "11:10"), speed=1000)
        await wait_for(lambda: "NVDA" not in sim.positions(), 30, "the NVDA exit", daemon)
        (sell,) = [o for o in sim.orders() if o["symbol"] == "NVDA" and o["side"] == "sell"]
        assert Decimal(sell["filled_qty"]) == held * 10
        assert _t(sell["submitted_at"]).date() == date(2024, 6, 21)
        await wait_for(lambda: _nvda(daemon) == 0, 30, "the ledger flat", daemon)
        assert "DISCREPANCY" not in daemon.log_text()
        assert await daemon.stop() == 0
