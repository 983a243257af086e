"""When a waiting intent is due and when it expires (``runtime.pending``), on a real SQLite
ledger: next-open intents held for the next session's open + delay and expired at its close,
and the startup rule for intents to execute at once that were never routed."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from magellan_daemon.ledger.store import Ledger
from magellan_daemon.runtime.pending import due_next_open, expire_unrouted, hold_for_next_open
from magellan_daemon.sessions import SessionBook
from strategies.api.model import Execute, Intent
from strategies.api.session import Session


def _session(day: int) -> Session:
    return Session(
        date=date(2024, 4, day),
        open=datetime(2024, 4, day, 13, 30, tzinfo=UTC),
        close=datetime(2024, 4, day, 20, 0, tzinfo=UTC),
    )


BOOK = SessionBook([_session(1), _session(2)])
DELAY = timedelta(seconds=60)


def _intent(symbol: str, execute: Execute) -> Intent:
    return Intent(
        strategy="daily_trend",
        symbol=symbol,
        action="buy",
        leg="entry",
        signal_time=datetime(2024, 4, 1, 4, 0, tzinfo=UTC),
        reason="test",
        qty=1,
        execute=execute,
    )


def test_a_next_open_intent_is_due_from_the_open_plus_delay_and_expires_at_the_close() -> None:
    # Arrange: the signal after the first session's close
    ledger = Ledger.open(Path(":memory:"))
    signal_at = _session(1).close + timedelta(minutes=5)
    hold_for_next_open(ledger, BOOK, "daily_trend", _intent("SPY", "next_open"), signal_at, DELAY)
    opens = _session(2).open + DELAY
    # Act / Assert
    assert due_next_open(ledger, "daily_trend", opens - timedelta(seconds=1)) == ([], [], 0)
    assert due_next_open(ledger, "other", opens) == ([], [], 0)
    due, ids, expired = due_next_open(ledger, "daily_trend", opens)
    assert [i.symbol for i in due] == ["SPY"] and len(ids) == 1 and expired == 0
    assert due_next_open(ledger, "daily_trend", _session(2).close) == ([], [], 1)
    assert [r.status for r in ledger.intents()] == ["expired"]


def test_no_next_session_writes_nothing() -> None:
    ledger = Ledger.open(Path(":memory:"))
    after_the_calendar = _session(2).close + timedelta(minutes=5)
    hold_for_next_open(
        ledger, BOOK, "daily_trend", _intent("SPY", "next_open"), after_the_calendar, DELAY
    )
    assert ledger.intents() == []


def test_at_startup_an_unrouted_now_intent_expires_and_a_next_open_one_waits() -> None:
    ledger = Ledger.open(Path(":memory:"))
    now = _session(1).open
    ledger.add_intent(_intent("SPY", "now"), now=now)
    hold_for_next_open(ledger, BOOK, "daily_trend", _intent("QQQ", "next_open"), now, DELAY)
    expire_unrouted(ledger, now)
    by_symbol = {r.intent.symbol: r.status for r in ledger.intents()}
    assert by_symbol == {"SPY": "expired", "QQQ": "pending"}
