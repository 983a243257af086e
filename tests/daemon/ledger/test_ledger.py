"""The ledger on a real SQLite file: exactly-once fills, positions per strategy, P&L, CSV."""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from magellan_daemon.domain import BrokerEvent, BrokerOrderId, ClientOrderId, ExecutionId
from magellan_daemon.ledger.store import Ledger
from magellan_daemon.ledger.tradelog import rebuild_all, trade_log_path, write_day
from magellan_daemon.timefmt import new_york_day, session_date
from tests.sqlite_read import query

T0 = datetime(2024, 11, 29, 15, 0, tzinfo=UTC)


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    led = Ledger.open(tmp_path / "ledger.sqlite")
    yield led
    led.close()


def _order(
    ledger: Ledger, cid: str, strategy: str, side: str, qty: int, now: datetime = T0
) -> None:
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
        leg="entry" if side == "buy" else "exit",
        signal_time=now,
        intent_id=None,
        replaces=None,
        now=now,
    )


def _event(cid: str, event: str, cum: int | None = None, price: str | None = None, **kw):
    return BrokerEvent(
        event=event,
        client_order_id=ClientOrderId(cid),
        broker_order_id=BrokerOrderId(f"b-{cid}"),
        ts_event=kw.pop("ts", T0 + timedelta(minutes=1)),
        source=kw.pop("source", "stream"),
        cum_filled_qty=None if cum is None else Decimal(cum),
        price=None if price is None else Decimal(price),
        **kw,
    )


def test_wal_mode_and_pending_submit_written_first(ledger: Ledger) -> None:
    assert query(ledger.path, "PRAGMA journal_mode")[0]["journal_mode"] == "wal"
    _order(ledger, "a", "daily_trend", "buy", 10)
    assert ledger.order("a").status == "pending_submit"


def test_partial_then_full_fill_applied_once_each(ledger: Ledger) -> None:
    _order(ledger, "a", "daily_trend", "buy", 10)
    ledger.apply_event(_event("a", "new"))
    first = ledger.apply_event(
        _event("a", "partial_fill", 4, "100", execution_id=ExecutionId("e1"), qty=Decimal(4))
    )
    assert first.fill.qty == 4 and first.order.status == "partially_filled"
    dup = ledger.apply_event(
        _event("a", "partial_fill", 4, "100", execution_id=ExecutionId("e1"), qty=Decimal(4))
    )
    assert dup.duplicate and dup.fill is None
    # The same execution seen again from REST activities (no execution id) is not re-applied.
    again = ledger.apply_event(_event("a", "partial_fill", 4, "100", source="reconcile"))
    assert again.fill is None
    last = ledger.apply_event(
        _event("a", "fill", 10, "101", execution_id=ExecutionId("e2"), qty=Decimal(6))
    )
    assert last.fill.qty == 6 and last.fill.price == Decimal("101")
    assert last.order.status == "filled"
    assert ledger.position_qty("daily_trend", "TSLA") == 10
    assert len(ledger.fills()) == 2


def test_missed_partial_is_recovered_from_cumulative_qty(ledger: Ledger) -> None:
    _order(ledger, "a", "daily_trend", "buy", 10)
    # The stream missed the partial fill of 4 @ 100; the final fill says cum 10, avg 100.6.
    applied = ledger.apply_event(
        _event(
            "a",
            "fill",
            10,
            "101",
            qty=Decimal(6),
            filled_avg_price=Decimal("100.6"),
        )
    )
    assert applied.fill.qty == 10
    assert applied.fill.price == Decimal("100.6")
    assert ledger.position_qty("daily_trend", "TSLA") == 10


def test_two_strategies_keep_their_own_shares_and_pnl(ledger: Ledger, tmp_path: Path) -> None:
    _order(ledger, "dt-buy", "daily_trend", "buy", 10)
    _order(ledger, "hs-buy", "hourly_swing", "buy", 5)
    ledger.apply_event(_event("dt-buy", "fill", 10, "100"))
    ledger.apply_event(_event("hs-buy", "fill", 5, "102"))
    _order(ledger, "hs-sell", "hourly_swing", "sell", 5)
    ledger.apply_event(_event("hs-sell", "fill", 5, "110"))
    assert ledger.position_qty("daily_trend", "TSLA") == 10
    assert ledger.position_qty("hourly_swing", "TSLA") == 0
    assert ledger.net_positions("main") == {"TSLA": Decimal(10)}
    assert ledger.realized_on("hourly_swing", date(2024, 11, 29)) == Decimal(40)
    trade = ledger.closed_trades("hourly_swing")[0]
    assert Decimal(trade["pnl"]) == 40 and Decimal(trade["exit_price"]) == 110

    log_dir = tmp_path / "trades"
    rebuild_all(ledger, log_dir)
    rows = list(csv.reader(trade_log_path(log_dir, "hourly_swing", date(2024, 11, 29)).open()))
    assert rows[0] == ["timestamp", "symbol", "action", "qty", "price", "order_id"]
    assert [r[2:5] for r in rows[1:]] == [["BUY", "5", "102"], ["SELL", "5", "110"]]
    # Rewriting is idempotent: still one row per fill.
    write_day(ledger, log_dir, "hourly_swing", date(2024, 11, 29))
    assert (
        len(list(csv.reader(trade_log_path(log_dir, "hourly_swing", date(2024, 11, 29)).open())))
        == 3
    )


def test_invalid_transition_is_recorded_not_forced(ledger: Ledger) -> None:
    _order(ledger, "a", "daily_trend", "buy", 10)
    ledger.apply_event(_event("a", "fill", 10, "100"))
    applied = ledger.apply_event(_event("a", "canceled"))
    assert applied.invalid and applied.order.status == "filled"
    events = query(ledger.path, "SELECT event, detail FROM order_events WHERE event='canceled'")
    assert events and "cannot take" in events[0]["detail"]


def test_the_post_reply_after_the_streams_fill_is_old_news(ledger: Ledger) -> None:
    _order(ledger, "a", "daily_trend", "buy", 10)
    ledger.apply_event(_event("a", "fill", 10, "100"))
    applied = ledger.apply_event(_event("a", "accepted", 0, source="submit"))
    assert applied.verdict == "stale" and applied.invalid is None
    assert applied.order.status == "filled" and applied.order.filled_qty == 10


def test_halt_and_state_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    led = Ledger.open(path)
    led.halt("bear_trap", "operator", "cli", T0)
    led.save_strategy_state("bear_trap", {"x": 1}, T0)
    led.close()
    led = Ledger.open(path)
    assert led.halted("bear_trap") == "operator"
    assert led.load_strategy_state("bear_trap") == {"x": 1}
    assert led.resume("bear_trap") and led.halted("bear_trap") is None
    led.close()


def test_a_sell_beyond_the_position_is_booked_short_not_zero(ledger: Ledger) -> None:
    _order(ledger, "b", "hourly_swing", "buy", 10)
    ledger.apply_event(_event("b", "fill", 10, "100"))
    _order(ledger, "s", "hourly_swing", "sell", 15)
    applied = ledger.apply_event(_event("s", "fill", 15, "101"))
    assert applied.fill is not None and applied.fill.position_after == -5
    assert ledger.position_qty("hourly_swing", "TSLA") == -5
    assert ledger.net_positions("main") == {"TSLA": Decimal(-5)}


def test_trade_bust_reverses_the_fill_and_its_pnl(ledger: Ledger) -> None:
    _order(ledger, "b", "hourly_swing", "buy", 10)
    ledger.apply_event(_event("b", "fill", 10, "100"))
    _order(ledger, "s", "hourly_swing", "sell", 10)
    ledger.apply_event(_event("s", "fill", 10, "110"))
    day = date(2024, 11, 29)
    assert ledger.realized_on("hourly_swing", day) == 100
    assert len(ledger.closed_trades("hourly_swing")) == 1
    busted = ledger.apply_event(
        _event("s", "trade_bust", 0, order_status="new", filled_avg_price=None)
    )
    assert busted.restated and busted.order.status == "new" and busted.order.filled_qty == 0
    assert ledger.position_qty("hourly_swing", "TSLA") == 10
    assert ledger.realized_on("hourly_swing", day) == 0
    assert ledger.closed_trades("hourly_swing") == []


def test_trade_correct_reprices_the_fill(ledger: Ledger) -> None:
    _order(ledger, "b", "hourly_swing", "buy", 10)
    ledger.apply_event(_event("b", "fill", 10, "100"))
    _order(ledger, "s", "hourly_swing", "sell", 10)
    ledger.apply_event(_event("s", "fill", 10, "110"))
    fixed = ledger.apply_event(
        _event("s", "trade_correct", 10, order_status="filled", filled_avg_price=Decimal("108"))
    )
    assert fixed.restated and fixed.order.status == "filled"
    assert ledger.realized_on("hourly_swing", date(2024, 11, 29)) == 80
    assert [t["pnl"] for t in ledger.closed_trades("hourly_swing")] == ["80"]
    live = [f for f in ledger.fills("hourly_swing") if not f["voided"]]
    assert [(f["side"], f["qty"], f["price"]) for f in live] == [
        ("buy", "10", "100"),
        ("sell", "10", "108"),
    ]


def test_an_older_ledger_file_is_migrated(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE fills (id INTEGER PRIMARY KEY, client_order_id TEXT NOT NULL, "
        "broker_order_id TEXT NOT NULL, broker_execution_id TEXT UNIQUE, account TEXT NOT "
        "NULL, strategy TEXT NOT NULL, symbol TEXT NOT NULL, side TEXT NOT NULL, qty TEXT NOT "
        "NULL, price TEXT NOT NULL, cum_qty TEXT NOT NULL, ts TEXT NOT NULL, source TEXT NOT "
        "NULL, UNIQUE (broker_order_id, cum_qty));"
        "INSERT INTO fills VALUES (1,'a','b',NULL,'main','x','TSLA','buy','1','2','1','t','s');"
    )
    conn.close()
    led = Ledger.open(path)
    rows = query(led.path, "SELECT qty, realized, voided, revision FROM fills")
    assert rows == [{"qty": "1", "realized": "0", "voided": 0, "revision": 0}]
    # Rebuilding the table dropped its triggers: the migration made them again.
    led._conn.execute("UPDATE fills SET realized = '0'")
    assert _rewrites(led) == 1
    led.close()


def _rewrites(ledger: Ledger) -> int:
    (row,) = query(ledger.path, "SELECT count FROM fills_rewrites")
    return row["count"]


def test_every_change_to_a_stored_fill_is_counted(ledger: Ledger) -> None:
    """A reader that keeps a running replay of the fills (the status page reads only those
    after the last id it read) learns from one row that rows it already read have changed:
    a new fill is not a change, a correction, a bust and a repricing are."""
    _order(ledger, "b", "hourly_swing", "buy", 10)
    ledger.apply_event(_event("b", "fill", 10, "100"))
    _order(ledger, "s", "hourly_swing", "sell", 10)
    ledger.apply_event(_event("s", "fill", 10, "110"))
    assert _rewrites(ledger) == 0
    ledger.apply_event(
        _event("s", "trade_correct", 10, order_status="filled", filled_avg_price=Decimal("108"))
    )
    corrected = _rewrites(ledger)
    assert corrected > 0
    ledger.apply_event(_event("s", "trade_bust", 0, order_status="new"))
    busted = _rewrites(ledger)
    assert busted > corrected
    _order(ledger, "o1", "daily_trend", "buy", 30)
    ledger.apply_event(
        _event("o1", "fill", 30, source="poll", filled_avg_price=Decimal("100.0067"))
    )
    assert _rewrites(ledger) == busted  # a new fill, priced from the average
    ledger.apply_event(_event("o1", "fill", 30, "100.01", qty=Decimal(30)))
    assert _rewrites(ledger) > busted  # repriced in place by its execution


def test_a_fill_priced_from_rounded_averages_is_corrected_by_its_execution(
    ledger: Ledger, tmp_path: Path
) -> None:
    """A fill first learned from the order's totals (a lookup: cumulative qty and a rounded
    average) has a derived price; the execution itself (the stream's fill or the FILL
    activity, with its own price) arriving later corrects it, and the position and P&L."""
    _order(ledger, "o1", "daily_trend", "buy", 30)
    ledger.apply_event(_event("o1", "partial_fill", 10, "100.00", qty=Decimal(10)))
    # The poll saw the order at 30 @ 100.0067 (Alpaca's rounding of 100.00666...):
    looked_up = _event("o1", "fill", 30, source="lookup", filled_avg_price=Decimal("100.0067"))
    derived = ledger.apply_event(looked_up).fill
    assert derived is not None and derived.price == Decimal("100.01005")
    # ... then the two executions it covered, the second ending at cum 30:
    ledger.apply_event(_event("o1", "fill", 30, "100.01", qty=Decimal(20)))
    rows = query(ledger.path, "SELECT qty, price FROM fills WHERE voided = 0 ORDER BY id")
    assert [(r["qty"], Decimal(r["price"])) for r in rows] == [
        ("10", Decimal("100.00")),
        ("20", Decimal("100.01")),
    ]
    (position,) = ledger.positions("daily_trend")
    assert position.qty == 30
    assert position.avg_price == (Decimal("1000.00") + Decimal("2000.20")) / 30
    # An execution that agrees with the booked price changes nothing.
    ledger.apply_event(_event("o1", "fill", 30, "100.01", qty=Decimal(20)))
    assert len(query(ledger.path, "SELECT 1 FROM fills")) == 2


def test_a_fill_that_booked_several_executions_at_once_is_split_into_them(
    ledger: Ledger,
) -> None:
    _order(ledger, "o1", "daily_trend", "buy", 30)
    looked_up = _event("o1", "fill", 30, source="poll", filled_avg_price=Decimal("100.0067"))
    ledger.apply_event(looked_up)  # both executions in one row, priced from the average
    for cum, qty, price in ((10, 10, "100.00"), (30, 20, "100.01")):  # as the activities come
        ledger.apply_event(_event("o1", "fill", cum, price, qty=Decimal(qty), source="reconcile"))
    rows = query(ledger.path, "SELECT qty, price, cum_qty, price_derived FROM fills ORDER BY id")
    assert sorted(
        (r["cum_qty"], r["qty"], Decimal(r["price"]), r["price_derived"]) for r in rows
    ) == [
        ("10", "10", Decimal("100.00"), 0),
        ("30", "20", Decimal("100.01"), 0),
    ]
    assert ledger.derived_fills("main") == frozenset()
    (position,) = ledger.positions("daily_trend")
    assert position.avg_price == (Decimal("1000.00") + Decimal("2000.20")) / 30


def test_a_ledger_without_derived_prices_gains_the_column(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "ledger.sqlite"
    Ledger.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute("ALTER TABLE fills DROP COLUMN price_derived")  # as the last release wrote it
    conn.close()
    led = Ledger.open(path)
    assert "price_derived" in {r["name"] for r in query(path, "PRAGMA table_info(fills)")}
    led.close()


def test_entries_on_counts_the_new_york_days_accepted_entries(ledger: Ledger) -> None:
    from magellan_daemon.timefmt import NEW_YORK

    def entry(cid: str, when: datetime) -> None:
        _order(ledger, cid, "bear_trap", "buy", 1, now=when)

    day = datetime(2024, 11, 29, tzinfo=NEW_YORK)
    entry("before", day - timedelta(minutes=1))  # 23:59 ET the day before (04:59 UTC)
    entry("morning", day + timedelta(hours=9, minutes=35))
    entry("late", day + timedelta(hours=23, minutes=59))  # 04:59 UTC the next day
    entry("refused", day + timedelta(hours=10))
    ledger.apply_event(_event("refused", "rejected"))
    assert ledger.entries_on("bear_trap", day.date()) == 2
    assert ledger.entries_on("bear_trap", (day - timedelta(days=1)).date()) == 1
    assert ledger.entries_on("daily_trend", day.date()) == 0


def test_the_trade_log_reads_one_new_york_day_by_time_range_with_an_index(
    ledger: Ledger, tmp_path: Path
) -> None:
    """Issue 17: the writer read every fill the strategy ever had on each fill and kept one
    day's in Python. Now the day's fills come from SQL by time range, through the index."""
    day = date(2024, 11, 29)
    when = {
        "before": datetime(2024, 11, 29, 4, 59, tzinfo=UTC),  # 23:59 ET on the 28th
        "first": datetime(2024, 11, 29, 5, 0, tzinfo=UTC),  # midnight ET: the 29th
        "late": datetime(2024, 11, 30, 4, 59, 59, tzinfo=UTC),  # 23:59:59 ET on the 29th
        "after": datetime(2024, 11, 30, 5, 0, tzinfo=UTC),  # midnight ET: the 30th
    }
    for i, (name, ts) in enumerate(when.items()):
        _order(ledger, name, "daily_trend", "buy", 1 + i, now=ts)
        ledger.apply_event(_event(name, "fill", 1 + i, "100", ts=ts))
    _order(ledger, "other", "hourly_swing", "buy", 7, now=when["first"])
    ledger.apply_event(_event("other", "fill", 7, "100", ts=when["first"]))
    statements: list[str] = []
    ledger._conn.set_trace_callback(statements.append)
    try:
        path = write_day(ledger, tmp_path / "trades", "daily_trend", day)
    finally:
        ledger._conn.set_trace_callback(None)
    rows = list(csv.reader(path.open()))[1:]
    assert [r[3] for r in rows] == ["2", "3"]  # first and late; not before, after or other
    [select] = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    plan = " ".join(r["detail"] for r in query(ledger.path, "EXPLAIN QUERY PLAN " + select))
    assert "USING INDEX fills_by_strategy_ts (strategy=? AND ts>? AND ts<?)" in plan, plan
    # The same days as before for every fill (rebuild_all reads them all at startup).
    assert rebuild_all(ledger, tmp_path / "all") == 4


def test_a_new_york_day_is_23_or_25_hours_when_the_clocks_change() -> None:
    for day, hours in ((date(2024, 3, 10), 23), (date(2024, 11, 3), 25), (date(2024, 11, 4), 24)):
        start, end = new_york_day(day)
        assert (end - start) == timedelta(hours=hours)
        assert session_date(start) == day == session_date(end - timedelta(microseconds=1))
        assert session_date(end) == day + timedelta(days=1)


def test_an_existing_ledger_gains_the_fills_time_index(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "ledger.sqlite"
    Ledger.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute("DROP INDEX IF EXISTS fills_by_strategy_ts")  # as the last release wrote it
    conn.close()
    Ledger.open(path).close()
    names = {r["name"] for r in query(path, "PRAGMA index_list(fills)")}
    assert "fills_by_strategy_ts" in names


def test_a_bust_rebuilds_each_new_york_days_pnl_from_that_days_fills(ledger: Ledger) -> None:
    """The rebuild after a bust sums each day's realised P&L from the day's fills, read by
    time range (it read every fill of the strategy once per day); a fill at 23:30 ET
    belongs to its New York day, not to the UTC date."""
    late = datetime(2024, 11, 28, 4, 30, tzinfo=UTC)  # 23:30 ET on the 27th
    trips = [("a", late), ("b", T0 - timedelta(days=1)), ("c", T0)]
    for name, t in trips:
        _order(ledger, f"{name}-buy", "hourly_swing", "buy", 10, now=t)
        ledger.apply_event(_event(f"{name}-buy", "fill", 10, "100", ts=t))
        _order(ledger, f"{name}-sell", "hourly_swing", "sell", 10, now=t)
        ledger.apply_event(_event(f"{name}-sell", "fill", 10, "103", ts=t + timedelta(minutes=1)))
    statements: list[str] = []
    ledger._conn.set_trace_callback(statements.append)
    ledger.apply_event(
        _event(
            "b-sell",
            "trade_correct",
            10,
            order_status="filled",
            filled_avg_price=Decimal("95"),
            ts=T0 - timedelta(days=1, minutes=-2),
        )
    )
    ledger._conn.set_trace_callback(None)
    sums = [s for s in statements if s.startswith("SELECT realized FROM fills")]
    assert len(sums) == 3  # one per day the corrected symbol traded on, each by its range
    for sql in sums:
        plan = " ".join(r["detail"] for r in query(ledger.path, "EXPLAIN QUERY PLAN " + sql))
        assert "USING INDEX fills_by_strategy_ts (strategy=? AND ts>? AND ts<?)" in plan, plan
    assert [ledger.realized_on("hourly_swing", date(2024, 11, d)) for d in (27, 28, 29)] == [
        Decimal(30),
        Decimal(-50),
        Decimal(30),
    ]


@pytest.mark.parametrize(
    ("asked", "refused"),
    [("pending_cancel", "order_cancel_rejected"), ("pending_replace", "order_replace_rejected")],
)
def test_a_refused_cancel_or_replace_from_the_stream_puts_the_order_back_to_work(
    ledger: Ledger, asked: str, refused: str
) -> None:
    """The stream's refusal of our cancel (or replace) returns the order to the status the
    broker reports with it. It was rewritten into a plain `new` event, which the state
    machine judged older than `pending_cancel`: the ledger kept the stop pending for good
    and every later event of it was an invalid transition."""
    from magellan_daemon.adapters.alpaca.convert import event_from_trade_update

    _order(ledger, "mg-stop", "bear_trap", "sell", 100)
    ledger.apply_event(_event("mg-stop", "new"))
    ledger.apply_event(_event("mg-stop", asked))
    order = {
        "id": "b-mg-stop",
        "client_order_id": "mg-stop",
        "symbol": "TSLA",
        "side": "sell",
        "status": "new",
        "qty": "100",
        "filled_qty": "0",
    }
    frame = {"event": refused, "timestamp": "2024-11-29T15:02:00Z", "order": order}
    ledger.apply_event(event_from_trade_update(frame))
    assert ledger.order("mg-stop").status == "new"


def test_symbols_filled_since_reads_the_accounts_fills_of_the_window_by_index(
    ledger: Ledger,
) -> None:
    """The corporate watch's extra symbols: those an account's strategies filled in since an
    instant, a position sold flat included; not before it, not another account's, not a
    busted fill's; read through fills_by_strategy_ts."""
    since = T0 + timedelta(days=1)
    fills = [  # (id, account, symbol, side, when)
        ("old", "main", "TSLA", "buy", T0),
        ("buy", "main", "AMC", "buy", since),
        ("sell", "main", "AMC", "sell", since + timedelta(hours=1)),
        ("other", "second", "GME", "buy", since),
        ("bust", "main", "NVDA", "buy", since),
    ]
    for cid, account, symbol, side, when in fills:
        ledger.create_order(
            client_order_id=ClientOrderId(cid),
            account=account,
            strategy="bear_trap" if account == "main" else "daily_trend",
            symbol=symbol,
            side=side,
            order_type="market",
            qty=Decimal(10),
            stop_price=None,
            time_in_force="day",
            leg="entry" if side == "buy" else "exit",
            signal_time=when,
            intent_id=None,
            replaces=None,
            now=when,
        )
        ledger.apply_event(_event(cid, "fill", 10, "100", ts=when))
    ledger.apply_event(_event("bust", "trade_bust", 0, order_status="new", filled_avg_price=None))
    assert ledger.symbols_filled_since("main", since) == {"AMC"}
    assert ledger.symbols_filled_since("main", T0) == {"TSLA", "AMC"}
    assert ledger.symbols_filled_since("second", since) == {"GME"}
    statements: list[str] = []
    ledger._conn.set_trace_callback(statements.append)
    try:
        ledger.symbols_filled_since("main", since)
    finally:
        ledger._conn.set_trace_callback(None)
    [select] = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    plan = " ".join(r["detail"] for r in query(ledger.path, "EXPLAIN QUERY PLAN " + select))
    assert "USING INDEX fills_by_strategy_ts (strategy=? AND ts>?)" in plan, plan
