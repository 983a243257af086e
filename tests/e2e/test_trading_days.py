"""The daemon trading real bars for two sessions: all three strategies on one account.

Window (real bars from ../shared/data/bars): Friday 2024-11-15 from 13:30 ET (the daemon
starts mid-session and warms Bear Trap's session state up from REST bars) to Monday
2024-11-18 11:30 ET, skipping the weekend.

- Bear Trap: MULN crashes on 2024-11-15 (crash_days.csv: first -15% minute 12:37); the
  replay (`magellan signals`) enters on the 13:44 bar.
- Daily Trend: the 16:05 signal of 2024-11-15 (a fresh daemon is flat, so every symbol above
  its upper band enters), sent at Monday's open + 60 s.
- Hourly Swing: the hourly evaluations of Monday. The test config narrows TSLA's bands to
  75/70 (the repo's are 60/40) so that the trade closes inside the window: TSLA enters on
  the 10:00 bar and exits on the 12:00 bar.
- Shared account: Daily Trend buys TSLA at Monday's open too, so both strategies hold TSLA
  on one account, and Hourly Swing's exit must sell only its own shares.
"""

from __future__ import annotations

import csv
from collections import Counter
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import pytest_asyncio

from tests.e2e.harness import (
    KEY,
    MINUTE,
    SECRET,
    SPEED,
    Daemon,
    Sim,
    assert_stop_rested_until_exit,
    config_dir,
    ny,
    wait_for,
)

pytestmark = [pytest.mark.timeout(240), pytest.mark.asyncio(loop_scope="module")]
HOURLY_TSLA = (
    "TSLA = { rsi_period = 14, upper = 60, lower = 40 }",
    "TSLA = { rsi_period = 14, upper = 75, lower = 70 }",
)


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def session_run(bars_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """Run the window once; yield (sim, daemon, snapshots) after a clean SIGTERM stop."""
    tmp_path = tmp_path_factory.mktemp("trading_days")
    config = config_dir(tmp_path, {"hourly_swing.toml": HOURLY_TSLA})
    snapshots = {}
    async with Sim(bars_dir, ny("2024-11-15", "13:30")) as sim:
        daemon = Daemon(config, tmp_path / "state", sim.url, tmp_path / "daemon.log")
        daemon.start()
        await daemon.wait_ready()
        # Bear Trap's window at half speed: "within one bar" must hold on a loaded machine.
        await sim.run_until(ny("2024-11-15", "14:00"), speed=SPEED / 2)
        await sim.run_until(ny("2024-11-15", "16:15"))
        await wait_for(
            lambda: daemon.query("SELECT 1 FROM intents WHERE strategy='daily_trend'"),
            30,
            "daily intents",
            daemon,
        )
        snapshots["2024-11-15 close"] = await _settled(sim, daemon)
        sim.jump(ny("2024-11-18", "09:25"))
        await sim.run_until(ny("2024-11-18", "12:05"))
        await _settled(sim, daemon)
        snapshots["both hold TSLA"] = _strategy_positions(daemon)
        await sim.run_until(ny("2024-11-18", "14:05"))
        snapshots["end"] = await _settled(sim, daemon)
        assert await daemon.stop() == 0
        yield sim, daemon, snapshots


async def _settled(sim: Sim, daemon: Daemon) -> tuple[dict[str, float], dict[str, float]]:
    """With virtual time frozen at a checkpoint, the ledger must converge on the broker:
    the strategies' positions sum to the broker's (a fill's event may still be in flight)."""
    await wait_for(
        lambda: sim.positions() == _ledger_net(daemon), 30, "ledger equal to broker", daemon
    )
    return sim.positions(), _ledger_net(daemon)


def _strategy_positions(daemon: Daemon) -> dict[tuple[str, str], Decimal]:
    return {
        (r["strategy"], r["symbol"]): Decimal(r["qty"])
        for r in daemon.query("SELECT strategy, symbol, qty FROM positions")
        if Decimal(r["qty"])
    }


def _ledger_net(daemon: Daemon) -> dict[str, float]:
    net: dict[str, float] = {}
    for (_, symbol), qty in _strategy_positions(daemon).items():
        net[symbol] = net.get(symbol, 0.0) + float(qty)
    return net


async def test_two_sessions_end_to_end(session_run) -> None:
    sim, daemon, snapshots = session_run
    orders = daemon.query("SELECT * FROM orders ORDER BY created_at")
    by_strategy = Counter(o["strategy"] for o in orders)
    assert (
        by_strategy["bear_trap"] and by_strategy["daily_trend"] and by_strategy["hourly_swing"]
    ), by_strategy

    # -- Bear Trap: entry within one bar of the signal, protected by a resting stop ------
    entry = next(o for o in orders if o["strategy"] == "bear_trap" and o["leg"] == "entry")
    assert entry["symbol"] == "MULN"
    signal_end = _t(entry["signal_time"]) + MINUTE
    assert _t(entry["created_at"]) - signal_end <= MINUTE
    stops = [o for o in orders if o["strategy"] == "bear_trap" and o["leg"] == "protective_stop"]
    assert stops, "no protective stop order"
    entry_fill = daemon.query(
        "SELECT MIN(ts) AS ts FROM fills WHERE client_order_id=?", (entry["client_order_id"],)
    )[0]["ts"]
    first_stop = min(_t(s["created_at"]) for s in stops)
    assert first_stop - _t(entry_fill) <= 2 * MINUTE  # placed right after the entry filled
    # Flat at the end, and a stop rested at the broker from just after the entry fill until
    # the exit: the broker's stop orders (the replace chain) cover that time without a gap,
    # and the last one either was the exit or ended only when the final sell went out.
    assert (
        daemon.query(
            "SELECT qty FROM positions WHERE strategy='bear_trap' AND CAST(qty AS REAL) != 0"
        )
        == []
    )
    assert_stop_rested_until_exit(sim.orders(), "MULN")

    # -- Daily Trend: intents at 16:05, orders at the next open + 60 s (not on the weekend)
    assert "job daily signal (planned 2024-11-15 16:05:00 ET)" in daemon.log_text()
    assert "job execute pending intents (planned 2024-11-18 09:31:00 ET)" in daemon.log_text()
    intents = daemon.query("SELECT * FROM intents WHERE strategy='daily_trend'")
    for intent in intents:
        created = _t(intent["created_at"])
        assert ny("2024-11-15", "16:05") <= created < ny("2024-11-15", "16:10"), intent
        assert _t(intent["not_before"]) == ny("2024-11-18", "09:31")
        assert intent["status"] in ("sent", "blocked"), intent
    for order in (o for o in orders if o["strategy"] == "daily_trend"):
        assert _t(order["created_at"]) >= ny("2024-11-18", "09:31"), order

    # -- Hourly Swing: orders right after an hourly bar completes -----------------------
    for order in (o for o in orders if o["strategy"] == "hourly_swing"):
        bar_end = _t(order["signal_time"]) + timedelta(hours=1)
        assert timedelta(0) <= _t(order["created_at"]) - bar_end < timedelta(minutes=5), order

    # -- Exactly once: every simulator fill is in the ledger and the CSV once -----------
    broker_fills = sim.fills()
    ledger_fills = daemon.query("SELECT * FROM fills")
    key = Counter((f["broker_order_id"], Decimal(f["cum_qty"])) for f in ledger_fills)
    assert max(key.values()) == 1
    assert sorted((f["order_id"], Decimal(f["cum_qty"])) for f in broker_fills) == sorted(key)
    csv_rows = []
    for path in (daemon.state_dir / "trades").glob("*_trades_*.csv"):
        with path.open() as handle:
            rows = list(csv.DictReader(handle))
        assert list(rows[0]) == ["timestamp", "symbol", "action", "qty", "price", "order_id"]
        csv_rows += rows
    assert len(csv_rows) == len(broker_fills)
    assert Counter(r["order_id"] for r in csv_rows) == Counter(f["order_id"] for f in broker_fills)

    # -- Ledger positions per strategy sum to the broker's, at each close and at the end
    for when, (broker, ledger) in ((k, v) for k, v in snapshots.items() if k != "both hold TSLA"):
        assert broker == ledger, when

    assert daemon.query("SELECT * FROM discrepancies") == []

    # -- No client_order_id twice at the broker -----------------------------------------
    cids = [o["client_order_id"] for o in sim.orders()]
    assert len(cids) == len(set(cids))


async def test_shared_account_exit_sells_only_its_own_shares(session_run) -> None:
    sim, daemon, snapshots = session_run
    both = snapshots["both hold TSLA"]
    daily, hourly = both[("daily_trend", "TSLA")], both[("hourly_swing", "TSLA")]
    assert daily > 0 and hourly > 0, both
    exits = daemon.query(
        "SELECT * FROM orders WHERE strategy='hourly_swing' AND symbol='TSLA' AND side='sell'"
    )
    assert [Decimal(o["qty"]) for o in exits] == [hourly]
    assert all(o["status"] == "filled" for o in exits)
    end = _strategy_positions(daemon)
    assert end.get(("hourly_swing", "TSLA"), Decimal(0)) == 0
    assert end[("daily_trend", "TSLA")] == daily
    assert sim.positions()["TSLA"] == float(daily)


async def test_no_secret_in_any_log_line_ledger_row_or_file(session_run) -> None:
    """The daemon ran the whole window with recognisable fake keys: neither the key id nor
    the secret appears in its log, in any ledger row, or in any file it wrote."""
    _, daemon, _ = session_run
    needles = [KEY.encode(), SECRET.encode()]
    written = [daemon.log_path, *(p for p in daemon.state_dir.rglob("*") if p.is_file())]
    assert len(written) > 3
    for path in written:
        data = path.read_bytes()
        for needle in needles:
            assert needle not in data, f"{needle!r} found in {path}"
    tables = [r["name"] for r in daemon.query("SELECT name FROM sqlite_master WHERE type='table'")]
    for table in tables:
        for row in daemon.query(f"SELECT * FROM {table}"):
            text = repr(row)
            assert KEY not in text and SECRET not in text, (table, row)
