"""The operator's CLI (status, halt, resume, flatten, trades) and its control channel, on a
real SQLite file: the ledger is filled through ``Ledger`` methods, the "daemon" side of the
channel is a second connection (in a thread where the CLI waits on it)."""

from __future__ import annotations

import asyncio
import io
import sys
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from magellan_core.clock import VirtualClock
from magellan_daemon.cli.main import main
from magellan_daemon.domain import BrokerEvent, BrokerOrderId, ClientOrderId
from magellan_daemon.ledger.control import ControlChannel
from magellan_daemon.ledger.store import Ledger
from strategies.api.model import Intent
from tests.e2e.harness import Daemon, Sim, config_dir, ny, wait_for
from tests.sqlite_read import query

REPO = Path(__file__).resolve().parents[2]
CONFIG = str(REPO / "configs" / "magellan.toml")
T0 = datetime(2024, 11, 18, 14, 31, tzinfo=UTC)  # 09:31 New York


def _cli(state: Path, *argv: str) -> int:
    return main([argv[0], "--config", CONFIG, "--state-dir", str(state), *argv[1:]])


def _buy_then_fill(ledger: Ledger, strategy: str, qty: int, price: str, minute: int) -> str:
    """An order filled through the ledger's one door; returns its client_order_id."""
    return _filled(ledger, strategy, "buy", qty, price, minute, "entry")


def _filled(
    ledger: Ledger, strategy: str, side: str, qty: int, price: str, minute: int, leg: str
) -> str:
    cid = f"mg-{strategy}-TSLA-{minute}-{leg}"
    ts = T0 + timedelta(minutes=minute)
    ledger.create_order(
        client_order_id=ClientOrderId(cid),
        account="main",
        strategy=strategy,
        symbol="TSLA",
        side=side,
        order_type="market",
        qty=Decimal(qty),
        stop_price=None,
        time_in_force="day",
        leg=leg,
        signal_time=ts,
        intent_id=None,
        replaces=None,
        now=ts,
    )
    ledger.apply_event(
        BrokerEvent(
            event="fill",
            client_order_id=ClientOrderId(cid),
            broker_order_id=BrokerOrderId(f"b-{cid}"),
            ts_event=ts + timedelta(seconds=30),
            source="stream",
            cum_filled_qty=Decimal(qty),
            filled_avg_price=Decimal(price),
            price=Decimal(price),
            qty=Decimal(qty),
        )
    )
    return cid


@pytest.fixture
def state(tmp_path: Path) -> Path:
    """A state dir whose ledger holds two strategies sharing TSLA, a round trip, an intent."""
    folder = tmp_path / "state"
    ledger = Ledger.open(folder / "ledger.sqlite")
    _buy_then_fill(ledger, "daily_trend", 29, "340.10", 0)
    _buy_then_fill(ledger, "hourly_swing", 100, "345.00", 90)
    _filled(ledger, "hourly_swing", "sell", 100, "341.25", 150, "exit")
    _buy_then_fill(ledger, "hourly_swing", 40, "338.50", 200)
    ledger.add_intent(
        Intent(
            strategy="daily_trend",
            symbol="NVDA",
            action="buy",
            leg="entry",
            signal_time=T0 - timedelta(days=3),
            reason="rsi 61.2 > 58",
            qty=10,
            execute="next_open",
        ),
        now=T0,
        not_before=T0 + timedelta(days=1),
    )
    ledger.close()
    return folder


def _snapshot(state: Path, wall: VirtualClock | None = None, **data: object) -> None:
    channel = ControlChannel(state / "ledger.sqlite", wall=wall)
    channel.write_status(
        {
            "mode": "paper",
            "pid": 4242,
            "ready": True,
            "virtual_now": (T0 + timedelta(hours=4)).isoformat(),
            "streams": {"main": True},
            "next_jobs": [{"name": "hourly bar", "when": "2024-11-18T19:00:02+00:00"}],
            "prices": {"TSLA": "342.00"},
            "strategies": {"daily_trend": {"running": True}},
            **data,
        }
    )
    channel.close()


# -- control channel --------------------------------------------------------------------


def test_channel_round_trip_between_two_connections(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    cli, daemon = ControlChannel(path), ControlChannel(path)
    first = cli.submit("flatten", "daily_trend", {})
    second = cli.submit("flatten", None, {"note": "all"})
    assert [c.id for c in daemon.pending()] == [first, second]
    daemon.start(first)
    assert cli.get(first).status == "running"
    assert [c.id for c in daemon.pending()] == [second]
    result = {"canceled": ["a"], "sells": [{"symbol": "TSLA", "qty": "29"}], "errors": []}
    daemon.finish(first, True, result)
    daemon.finish(second, False, {"errors": ["boom"]})
    done, failed = cli.get(first), cli.get(second)
    assert (done.status, done.result, done.strategy) == ("done", result, "daily_trend")
    assert (failed.status, failed.args, failed.strategy) == ("failed", {"note": "all"}, None)
    assert done.finished and daemon.pending() == []
    assert cli.get(999) is None
    cli.close()
    daemon.close()


def test_withdraw_only_takes_back_a_command_not_started(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    channel = ControlChannel(path)
    waiting, started = channel.submit("flatten", None, {}), channel.submit("flatten", None, {})
    channel.start(started)
    assert channel.withdraw(waiting) and not channel.withdraw(started)
    assert channel.pending() == []
    assert channel.get(waiting).status == "withdrawn"
    channel.close()


def test_status_snapshot_is_replaced_and_goes_stale(tmp_path: Path) -> None:
    wall = VirtualClock(T0, speed=0)
    path = tmp_path / "ledger.sqlite"
    daemon, cli = ControlChannel(path, wall=wall), ControlChannel(path, wall=wall)
    assert cli.read_status() is None
    daemon.write_status({"mode": "sim", "ready": False})
    wall.advance(timedelta(seconds=2))
    daemon.write_status({"mode": "sim", "ready": True})
    wall.advance(timedelta(seconds=14))
    status = cli.read_status()
    assert status.data == {"mode": "sim", "ready": True}
    assert status.age_seconds == 14 and status.fresh
    wall.advance(timedelta(seconds=2))
    assert not cli.read_status().fresh
    assert cli._conn.execute("SELECT COUNT(*) FROM control_status").fetchone()[0] == 1
    daemon.close()
    cli.close()


def test_channel_and_ledger_write_concurrently(tmp_path: Path) -> None:
    """A daemon thread writing snapshots and ledger rows while the CLI submits: no lock
    errors, nothing lost."""
    path = tmp_path / "ledger.sqlite"
    ledger = Ledger.open(path)
    errors: list[BaseException] = []

    def daemon_side() -> None:
        channel = ControlChannel(path)
        try:
            for i in range(200):
                channel.write_status({"tick": i})
                ledger.save_strategy_state("tick", {"i": i}, datetime(2024, 1, 2, tzinfo=UTC))
        except BaseException as exc:  # reported to the test thread
            errors.append(exc)
        finally:
            channel.close()

    thread = threading.Thread(target=daemon_side)
    thread.start()
    cli = ControlChannel(path)
    ids = [cli.submit("flatten", None, {"i": i}) for i in range(200)]
    thread.join()
    assert errors == []
    assert [c.args["i"] for c in cli.pending()] == list(range(200))
    assert len(set(ids)) == 200
    assert cli.read_status().data == {"tick": 199}
    assert ledger.load_strategy_state("tick") == {"i": 199}
    cli.close()
    ledger.close()


# -- status -----------------------------------------------------------------------------


def test_status_json_numbers_equal_the_ledgers(state: Path, capsys) -> None:
    _snapshot(state)
    assert _cli(state, "status", "--json") == 0
    report = orjson.loads(capsys.readouterr().out)
    ledger = Ledger.open(state / "ledger.sqlite")
    day = (T0 + timedelta(hours=4)).date()
    assert report["daemon"]["running"] and report["day"] == str(day)
    assert report["day_basis"] == "daemon clock"
    assert report["strategies"]["daily_trend"]["running"] is True
    for name, strategy in report["strategies"].items():
        positions = {p.symbol: p for p in ledger.positions(name)}
        assert {p["symbol"] for p in strategy["positions"]} == set(positions)
        for p in strategy["positions"]:
            row = positions[p["symbol"]]
            assert Decimal(p["qty"]) == row.qty
            assert Decimal(p["entry_price"]) == row.avg_price
            assert Decimal(p["unrealized_pnl"]) == (Decimal("342.00") - row.avg_price) * row.qty
        assert Decimal(strategy["realized_today"]) == ledger.realized_on(name, day)
        pending = [i.id for i in ledger.intents("pending") if i.intent.strategy == name]
        assert [i["id"] for i in strategy["pending_intents"]] == pending
    hourly = report["strategies"]["hourly_swing"]
    assert Decimal(hourly["realized_today"]) == Decimal("-375.00")  # (341.25 - 345) * 100
    assert len(hourly["round_trips_today"]) == 1 and len(hourly["entries_today"]) == 2
    assert report["strategies"]["daily_trend"]["pending_intents"][0]["symbol"] == "NVDA"
    assert report["totals"]["unrealized_pnl"] == str(
        (Decimal("342") - Decimal("340.10")) * 29 + (Decimal("342") - Decimal("338.50")) * 40
    )
    assert report["streams"] == {"main": True}
    assert report["last_fill"] == ledger.fills()[-1]["ts"]
    ledger.close()


def test_status_text_without_a_daemon_says_so_and_has_no_prices(state: Path, capsys) -> None:
    wall = VirtualClock(datetime.now(UTC) - timedelta(minutes=5), speed=0)
    _snapshot(state, wall=wall)  # written 5 minutes ago: stale
    assert _cli(state, "halt", "bear_trap", "--reason", "too many losers") == 0
    capsys.readouterr()
    assert _cli(state, "status") == 0
    out = capsys.readouterr().out
    assert "daemon: NOT RUNNING (last seen" in out
    assert "today: 2024-11-18 (New York date of the last fill)" in out
    assert "streams: unknown (daemon not running)" in out
    assert "bear_trap [enabled, account main] HALTED since" in out
    assert "by cli: too many losers" in out
    tsla = next(line for line in out.splitlines() if line.split()[:2] == ["TSLA", "29"])
    assert "340.10" in tsla and "n/a" in tsla
    assert "today: realised -375.00, 2 entries, 1 round trips" in out
    assert "total: realised today -375.00, unrealised n/a, 2 open positions" in out


def test_status_without_ledger_or_with_bad_config(tmp_path: Path, capsys) -> None:
    assert _cli(tmp_path / "none", "status") == 1
    assert "no ledger at" in capsys.readouterr().err
    assert main(["status", "--config", str(tmp_path / "missing.toml")]) == 2
    assert "missing.toml" in capsys.readouterr().err


# -- halt / resume ----------------------------------------------------------------------


def test_halt_and_resume_without_a_daemon(tmp_path: Path, capsys) -> None:
    state = tmp_path / "fresh"  # no daemon ever ran here: the halt is waiting for it
    assert _cli(state, "halt", "hourly_swing", "--reason", "news day") == 0
    ledger = Ledger.open(state / "ledger.sqlite")
    assert ledger.halted("hourly_swing") == "news day"
    halt = ledger.halt_of("hourly_swing")
    assert halt is not None and halt.source == "cli"
    assert _cli(state, "resume", "hourly_swing") == 0
    assert ledger.halted("hourly_swing") is None
    assert _cli(state, "resume", "hourly_swing") == 0
    out = capsys.readouterr().out
    assert "hourly_swing HALTED: news day" in out and "hourly_swing was not halted" in out
    assert _cli(state, "halt", "moon_shot") == 2
    assert _cli(state, "resume", "moon_shot") == 2
    assert "unknown strategy 'moon_shot'" in capsys.readouterr().err
    ledger.close()


# -- flatten ----------------------------------------------------------------------------


def _commands(state: Path) -> list[dict]:
    return query(state / "ledger.sqlite", "SELECT * FROM control_commands")


def test_flatten_refuses_without_a_running_daemon(state: Path, capsys) -> None:
    assert _cli(state, "flatten", "daily_trend", "--yes") == 1
    assert "no daemon is running (never seen); nothing done" in capsys.readouterr().err
    _snapshot(state, wall=VirtualClock(datetime.now(UTC) - timedelta(seconds=20), speed=0))
    assert _cli(state, "flatten", "--yes") == 1
    assert "no daemon is running (last seen" in capsys.readouterr().err
    assert _commands(state) == []


def test_flatten_without_a_terminal_needs_yes(state: Path, capsys, monkeypatch) -> None:
    _snapshot(state)
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))  # piped input is not a confirmation
    assert _cli(state, "flatten", "daily_trend") == 2
    assert "add --yes" in capsys.readouterr().err
    assert _cli(state, "flatten", "nope", "--yes") == 2
    assert _commands(state) == []


def test_flatten_waits_for_the_daemon_and_prints_its_result(state: Path, capsys) -> None:
    _snapshot(state)
    result = {
        "canceled": ["mg-dt-TSLA-stop"],
        "sells": [{"symbol": "TSLA", "qty": "29", "client_order_id": "mg-dt-TSLA-flatten"}],
        "errors": [],
    }
    seen: list[tuple[str, str | None]] = []

    def daemon_side() -> None:
        channel = ControlChannel(state / "ledger.sqlite")
        for _ in range(500):
            commands = channel.pending()
            if commands:
                seen.append((commands[0].kind, commands[0].strategy))
                channel.start(commands[0].id)
                channel.finish(commands[0].id, True, result)
                break
            threading.Event().wait(0.01)
        channel.close()

    thread = threading.Thread(target=daemon_side)
    thread.start()
    code = _cli(state, "flatten", "daily_trend", "--yes", "--timeout", "10")
    thread.join()
    out = capsys.readouterr().out
    assert code == 0 and seen == [("flatten", "daily_trend")]
    assert "canceled 1 orders\n  mg-dt-TSLA-stop" in out
    assert "sell 29 TSLA  mg-dt-TSLA-flatten" in out
    assert [c["status"] for c in _commands(state)] == ["done"]


def test_flatten_with_no_answer_withdraws_the_command(state: Path, capsys) -> None:
    _snapshot(state)
    assert _cli(state, "flatten", "--yes", "--timeout", "0.3") == 1
    assert "no answer from the daemon after 0.3 s: withdrawn" in capsys.readouterr().err
    assert [(c["status"], c["strategy"]) for c in _commands(state)] == [("withdrawn", None)]


# -- trades -----------------------------------------------------------------------------


def test_trades_tables_and_totals(state: Path, capsys) -> None:
    assert _cli(state, "trades") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "fills (4)"
    header = lines[1].split()
    assert header == ["time", "strategy", "symbol", "side", "qty", "price", "order", "id"]
    first = lines[3].split()
    assert first[:2] == ["2024-11-18", "09:31:30"] and first[3:8] == [
        "daily_trend",
        "TSLA",
        "buy",
        "29",
        "340.10",
    ]
    # aligned: the symbol column starts at the same place on every row
    assert len({line.index("TSLA") for line in lines[3:7]}) == 1
    assert "round trips (1)" in lines
    trip = next(line for line in lines if line.split()[:3] == ["hourly_swing", "TSLA", "100"])
    assert "345.00" in trip and "341.25" in trip and trip.endswith("-375.00")
    assert lines[-2] == "total: 4 fills, bought $57,902.90, sold $34,125.00"
    assert lines[-1] == "total: 1 round trips, 0 winners, 1 losers, realised P&L -375.00"


def test_trades_filters_by_strategy_and_date(state: Path, capsys) -> None:
    assert _cli(state, "trades", "--strategy", "daily_trend") == 0
    out = capsys.readouterr().out
    assert "fills (1)" in out and "round trips (0)" in out and "hourly_swing" not in out
    assert _cli(state, "trades", "--since", "2024-11-19") == 0
    assert "fills (0)" in capsys.readouterr().out
    assert _cli(state, "trades", "--strategy", "nope") == 2


# -- end to end: the real daemon on the simulator ----------------------------------------

HOURLY_BANDS = (
    "TSLA = { rsi_period = 14, upper = 60, lower = 40 }\n"
    "NVDA = { rsi_period = 28, upper = 55, lower = 45 }",
    # TSLA enters on the 10:00 bar (RSI 78) and exits on the 12:00 bar (68.6); NVDA crosses
    # 34.5 on the 13:00 bar (35.8, after 33.0, 32.4, 31.1): an entry while halted.
    "TSLA = { rsi_period = 14, upper = 75, lower = 70 }\n"
    "NVDA = { rsi_period = 28, upper = 34.5, lower = 20 }",
)
NO_BEAR_TRAP = (  # not part of this scenario: fewer streamed bars, a faster run
    '[strategies.bear_trap]\nconfig = "bear_trap.toml"\naccount = "main"\nenabled = true',
    '[strategies.bear_trap]\nconfig = "bear_trap.toml"\naccount = "main"\nenabled = false',
)


async def _magellan(config: Path, state: Path, *argv: str) -> tuple[int, str]:
    """One CLI command as its own process (as an operator runs it); (exit code, stdout)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "magellan_daemon",
        argv[0],
        "--config",
        str(config),
        "--state-dir",
        str(state),
        *argv[1:],
        cwd=REPO,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode is not None
    return proc.returncode, out.decode() + err.decode()


def _held(daemon: Daemon) -> dict[tuple[str, str], Decimal]:
    return {
        (r["strategy"], r["symbol"]): Decimal(r["qty"])
        for r in daemon.query("SELECT strategy, symbol, qty FROM positions")
        if Decimal(r["qty"])
    }


def _status_matches_ledger(report: dict, daemon: Daemon) -> None:
    day = report["day"]
    for name, strategy in report["strategies"].items():
        ledger_positions = {
            r["symbol"]: (Decimal(r["qty"]), Decimal(r["avg_price"]))
            for r in daemon.query("SELECT * FROM positions WHERE strategy = ?", (name,))
            if Decimal(r["qty"])
        }
        shown = {
            p["symbol"]: (Decimal(p["qty"]), Decimal(p["entry_price"]))
            for p in strategy["positions"]
        }
        assert shown == ledger_positions, name
        realized = daemon.query(
            "SELECT realized FROM pnl_daily WHERE strategy = ? AND session_date = ?", (name, day)
        )
        assert Decimal(strategy["realized_today"]) == Decimal(
            realized[0]["realized"] if realized else 0
        )
        pending = daemon.query(
            "SELECT id FROM intents WHERE strategy = ? AND status = 'pending'", (name,)
        )
        assert [i["id"] for i in strategy["pending_intents"]] == [r["id"] for r in pending]


@pytest.mark.timeout(120)
async def test_halt_flatten_status_against_the_running_daemon(
    bars_dir: Path, tmp_path: Path
) -> None:
    """Monday 2024-11-18 from 09:25 ET on real bars (TSLA and NVDA have hourly bars only:
    the simulator trades them on a minute path inside those bars, so a market order fills
    within a couple of minutes):

    - 09:31 Daily Trend's catch-up of Friday's signal buys TSLA; 11:00 Hourly Swing buys
      TSLA: both hold TSLA on one account.
    - 12:05 the operator halts hourly_swing and flattens daily_trend (its sell fills by
      12:10, Hourly Swing's shares untouched).
    - 13:00 Hourly Swing's TSLA exit goes out although halted; 14:00 its NVDA entry is
      blocked by the halt.
    """
    config = config_dir(
        tmp_path, {"hourly_swing.toml": HOURLY_BANDS, "magellan.toml": NO_BEAR_TRAP}
    )
    state = tmp_path / "state"
    async with Sim(bars_dir, ny("2024-11-18", "09:25")) as sim:
        daemon = Daemon(config, state, sim.url, tmp_path / "daemon.log")
        daemon.start()
        try:
            await daemon.wait_ready()
            await sim.run_until(ny("2024-11-18", "12:05"))
            sim.pause()
            await wait_for(
                lambda: ("hourly_swing", "TSLA") in _held(daemon), 30, "hourly TSLA", daemon
            )
            both = _held(daemon)
            daily, hourly = both[("daily_trend", "TSLA")], both[("hourly_swing", "TSLA")]
            assert daily > 0 and hourly > 0, both
            await _operate(config, state, daemon, daily)  # virtual time frozen meanwhile
            await sim.run_until(ny("2024-11-18", "12:10"))
            sim.pause()
            await wait_for(
                lambda: ("daily_trend", "TSLA") not in _held(daemon), 30, "flatten fill", daemon
            )
            after = _held(daemon)
            assert after[("hourly_swing", "TSLA")] == hourly  # the other strategy's shares
            assert all(s != "daily_trend" for s, _ in after)  # every daily position sold
            assert sim.positions().get("TSLA") == float(hourly)
            await sim.run_until(ny("2024-11-18", "14:05"))
            sim.pause()
            await wait_for(lambda: not _held(daemon), 30, "hourly exit fill", daemon)
            await wait_for(
                lambda: daemon.query(
                    "SELECT 1 FROM intents WHERE symbol='NVDA' AND status != 'pending'"
                ),
                30,
                "the NVDA entry signal, routed",
                daemon,
            )
        finally:
            assert await daemon.stop() == 0
    _assert_halt_blocked_entry_not_exit(daemon, hourly)


async def _operate(config: Path, state: Path, daemon: Daemon, daily_tsla: Decimal) -> None:
    """halt, flatten and status --json while the daemon runs (virtual time paused)."""
    code, out = await _magellan(config, state, "halt", "hourly_swing", "--reason", "e2e")
    assert code == 0, out
    code, out = await _magellan(config, state, "flatten", "daily_trend", "--yes")
    assert code == 0, out
    assert f"sell {daily_tsla} TSLA" in out, out
    code, out = await _magellan(config, state, "status", "--json")
    assert code == 0, out
    report = orjson.loads(out)
    assert report["daemon"]["running"] and report["day"] == "2024-11-18"
    assert report["strategies"]["daily_trend"]["running"] is True
    _status_matches_ledger(report, daemon)
    assert report["strategies"]["hourly_swing"]["halted"]["reason"] == "e2e"
    open_sells = report["strategies"]["daily_trend"]["open_orders"]
    assert [(o["symbol"], o["side"], Decimal(o["qty"])) for o in open_sells] == [
        ("TSLA", "sell", daily_tsla)
    ]


def _assert_halt_blocked_entry_not_exit(daemon: Daemon, hourly_tsla: Decimal) -> None:
    intents = daemon.query("SELECT * FROM intents WHERE strategy='hourly_swing' ORDER BY id")
    exit_intent = next(i for i in intents if i["action"] == "sell")
    assert exit_intent["symbol"] == "TSLA" and exit_intent["status"] == "sent"
    exit_orders = daemon.query("SELECT * FROM orders WHERE strategy='hourly_swing' AND side='sell'")
    assert [(o["status"], Decimal(o["qty"])) for o in exit_orders] == [("filled", hourly_tsla)]
    nvda = next(i for i in intents if i["symbol"] == "NVDA")
    assert (nvda["action"], nvda["status"]) == ("buy", "blocked")
    assert nvda["status_reason"] == "halted: e2e"
    assert daemon.query("SELECT * FROM orders WHERE symbol='NVDA'") == []
