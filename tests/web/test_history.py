"""The equity curve, marked to market, on a small hand-worked series (pure, no I/O)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from magellan_daemon.web.history import RunningBook, equity_now, session_equity
from strategies.api.session import Session


def _session(day: int) -> Session:
    return Session(
        date=date(2024, 11, day),
        open=datetime(2024, 11, day, 14, 30, tzinfo=UTC),
        close=datetime(2024, 11, day, 21, 0, tzinfo=UTC),
    )


def _fill(strategy: str, side: str, qty: int, price: str, ts: str, realized: str = "0") -> dict:
    return {
        "strategy": strategy,
        "symbol": "AAPL",
        "side": side,
        "qty": str(qty),
        "price": price,
        "ts": ts,
        "realized": realized,
    }


FILLS = [
    # Day 1: buy 10 at 100 and 10 at 110 (average 105); closes at 108.
    _fill("daily_trend", "buy", 10, "100", "2024-11-18T15:00:00.000000Z"),
    _fill("daily_trend", "buy", 10, "110", "2024-11-18T16:00:00.000000Z"),
    # Day 2: sell 5 at 115 (realised 5 * 10 = 50); closes at 120.
    _fill("daily_trend", "sell", 5, "115", "2024-11-19T15:00:00.000000Z", realized="50"),
    # Day 3, still open at "now" (17:00): sell the other 15 at 102 (realised -45).
    _fill("daily_trend", "sell", 15, "102", "2024-11-20T16:00:00.000000Z", realized="-45"),
]
CLOSES = {
    ("AAPL", date(2024, 11, 18)): Decimal("108"),
    ("AAPL", date(2024, 11, 19)): Decimal("120"),
}


def test_each_session_is_marked_at_its_close_and_today_at_the_live_price() -> None:
    now = datetime(2024, 11, 20, 17, 0, tzinfo=UTC)
    sessions = [_session(18), _session(19), _session(20), _session(21)]
    points = session_equity(FILLS, sessions, CLOSES, now, {"AAPL": Decimal("99")})
    # 18th: 20 held at 105, marked 108 -> +60. 19th: 50 realised + 15 * (120 - 105) = 275.
    # 20th (open, now): 50 - 45 realised, nothing held -> 5. The 21st has not opened.
    assert [(p.t.day, p.equity) for p in points] == [
        (18, Decimal("60")),
        (19, Decimal("275")),
        (20, Decimal("5")),
    ]
    assert points[-1].t == now


def test_a_position_without_a_mark_is_valued_at_its_last_fill() -> None:
    now = datetime(2024, 11, 18, 17, 0, tzinfo=UTC)
    # Open session, no live price: the last fill (110) marks it: 20 * (110 - 105) = 100.
    assert equity_now(FILLS[:2], {}) == Decimal("100")
    points = session_equity(FILLS[:2], [_session(18)], {}, now, {})
    assert [p.equity for p in points] == [Decimal("100")]


def _numbered(fills: list[dict]) -> list[dict]:
    return [{**f, "id": i} for i, f in enumerate(fills, 1)]


def test_the_running_book_fed_one_fill_at_a_time_gives_the_replay() -> None:
    sessions = [_session(18), _session(19), _session(20), _session(21)]
    live = {"AAPL": Decimal("99")}
    book = RunningBook()
    fills = _numbered(FILLS)
    for day, hour, taken in ((18, 17, 1), (18, 17, 2), (18, 22, 2), (19, 17, 3), (20, 17, 4)):
        now = datetime(2024, 11, day, hour, 0, tzinfo=UTC)
        assert book.advance(fills[book.cursor : taken], sessions, now)
        seen = FILLS[:taken]
        assert book.curve(CLOSES, live) == session_equity(seen, sessions, CLOSES, now, live)
        assert book.equity_now(live) == equity_now(seen, live)


def test_the_running_book_refuses_a_fill_timed_before_what_it_kept() -> None:
    sessions = [_session(18), _session(19), _session(20)]
    now = datetime(2024, 11, 20, 17, 0, tzinfo=UTC)
    book = RunningBook()
    assert book.advance(_numbered(FILLS), sessions, now)
    # Booked late, timed on the 19th: the kept state at the 19th's close misses it.
    late = {**FILLS[0], "id": 5, "ts": "2024-11-19T20:00:00.000000Z"}
    assert not book.advance([late], sessions, now)
    # Timed today, before the last AAPL fill applied (16:00): AAPL's order would change.
    early = {**FILLS[0], "id": 5, "ts": "2024-11-20T15:00:00.000000Z"}
    assert not book.advance([early], sessions, now)
    # The clock gone back.
    assert not book.advance([], sessions, now.replace(hour=16))
    assert book.cursor == 4  # nothing taken from the refused calls
    assert book.advance([], sessions, now)
