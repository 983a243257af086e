"""``Ledger.one_transaction()`` on a real SQLite file: the group's writes are one transaction
(seen by the ledger's own connection at once, by another connection only once it ends), a
failing ``_tx()`` block inside it rolls back only itself, and an exception out of the group
commits what was written. Outside a group every write is committed as it is made."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from magellan_daemon.ledger.store import Ledger
from strategies.api.model import Evaluation
from tests.sqlite_read import query

T0 = datetime(2024, 4, 1, 14, 0, tzinfo=UTC)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "ledger.sqlite"


@pytest.fixture
def ledger(path: Path) -> Ledger:
    led = Ledger.open(path)
    yield led
    led.close()


def _halted(path: Path) -> set[str]:
    """The halted strategies another connection sees (what was committed)."""
    return {r["strategy"] for r in query(path, "SELECT strategy FROM halts")}


def _evaluations(path: Path) -> int:
    return query(path, "SELECT count(*) AS n FROM evaluations")[0]["n"]


def _evaluation(symbol: str) -> Evaluation:
    return Evaluation(strategy="s", symbol=symbol, bar_time=T0, decision="skip", reason="quiet")


def test_without_a_group_each_write_is_committed_as_it_is_made(ledger: Ledger, path: Path):
    ledger.halt("a", "test", "operator", T0)
    ledger.record_evaluations([_evaluation("X")], T0)  # a ``_tx()`` block
    assert _halted(path) == {"a"}
    assert _evaluations(path) == 1


def test_writes_in_the_group_are_seen_by_its_connection_and_by_others_at_its_end(
    ledger: Ledger, path: Path
):
    with ledger.one_transaction():
        ledger.halt("a", "test", "operator", T0)
        ledger.record_evaluations([_evaluation("X"), _evaluation("Y")], T0)
        ledger.strategy_states.save("s", {"strategy": {}}, {"X": {"n": 1}}, {"X": T0}, T0)
        assert ledger.halted("a") == "test"
        assert len(ledger.evaluations("s")) == 2
        assert ledger.load_strategy_state("s") is not None
        assert _halted(path) == set()
        assert _evaluations(path) == 0
        assert query(path, "SELECT * FROM strategy_symbol_state") == []
    assert _halted(path) == {"a"}
    assert _evaluations(path) == 2
    assert len(query(path, "SELECT * FROM strategy_symbol_state")) == 1
    ledger.halt("b", "test", "operator", T0)  # autocommit again
    assert _halted(path) == {"a", "b"}


def test_a_failing_block_in_the_group_rolls_back_only_itself(ledger: Ledger, path: Path):
    with ledger.one_transaction():
        ledger.halt("before", "test", "operator", T0)
        with pytest.raises(RuntimeError), ledger._tx() as conn:
            conn.execute(
                "INSERT INTO halts (strategy, reason, since, source) VALUES (?,?,?,?)",
                ("failed", "test", T0.isoformat(), "operator"),
            )
            raise RuntimeError("the block fails after its first row")
        ledger.halt("after", "test", "operator", T0)
        assert ledger.halted("failed") is None
    assert _halted(path) == {"before", "after"}


def test_a_failing_statement_rolls_back_its_whole_block(ledger: Ledger, path: Path):
    ledger.record_evaluations([_evaluation("X")], T0)
    with ledger.one_transaction():
        with pytest.raises(sqlite3.IntegrityError), ledger._tx() as conn:
            conn.execute("DELETE FROM evaluations")
            conn.execute("INSERT INTO halts (strategy) VALUES ('no reason')")  # NOT NULL
        ledger.halt("a", "test", "operator", T0)
    assert [e["symbol"] for e in ledger.evaluations("s")] == ["X"]  # the delete undone
    assert _evaluations(path) == 1
    assert _halted(path) == {"a"}


def test_an_exception_out_of_the_group_commits_what_was_written(ledger: Ledger, path: Path):
    with pytest.raises(RuntimeError), ledger.one_transaction():
        ledger.halt("a", "test", "operator", T0)
        ledger.record_evaluations([_evaluation("X")], T0)
        raise RuntimeError("the step fails")
    assert _halted(path) == {"a"}
    assert _evaluations(path) == 1
    ledger.halt("b", "test", "operator", T0)  # the connection is back in autocommit
    assert _halted(path) == {"a", "b"}


async def test_awaited_coroutines_write_inside_the_group(ledger: Ledger, path: Path):
    async def lane(name: str) -> None:
        await asyncio.sleep(0)
        ledger.halt(name, "test", "lane", T0)
        await asyncio.sleep(0)
        ledger.record_evaluations([_evaluation(name)], T0)

    with ledger.one_transaction():
        await asyncio.gather(lane("a"), lane("b"))
        assert _halted(path) == set()
    assert _halted(path) == {"a", "b"}
    assert _evaluations(path) == 2


def test_groups_do_not_nest(ledger: Ledger, path: Path):
    with ledger.one_transaction():
        ledger.halt("a", "test", "operator", T0)
        with pytest.raises(RuntimeError, match="already"), ledger.one_transaction():
            pass
        assert _halted(path) == set()
    assert _halted(path) == {"a"}


def test_only_the_backtest_groups_writes():
    """The live daemon's writes are durable as they are made: it never opens a group."""
    package = Path(__file__).parents[3] / "magellan_daemon"
    users = {
        p.relative_to(package).parts[0]
        for p in package.rglob("*.py")
        if re.search(r"with [\w.]+\.one_transaction\(\)", p.read_text())
    }
    assert users == {"backtest"}
