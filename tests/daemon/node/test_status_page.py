"""The status page's HTTP layer on a real (not started) daemon and its real ledger: GET
only, the bearer token when one is set, and answers shaped as the README says."""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import aiohttp
import pytest

from magellan_daemon.errors import BrokerError
from magellan_daemon.ledger.store import LEDGER_FILE
from magellan_daemon.sessions import SessionBook
from magellan_daemon.timefmt import session_date
from magellan_daemon.web import history, ledger_read
from magellan_daemon.web.server import STATIC, StatusServer, start_status_page
from magellan_daemon.web.settings import WebConfig
from magellan_daemon.web.view import StatusView, _money
from magellan_sim.market.calendar import SessionCalendar
from strategies.api.session import Session
from tests.daemon.node.test_emergency_stop import _fill, _restate
from tests.e2e.test_status_page import CHROMIUM, _chromium

TOKEN = "page-token-0123456789abcdef"


async def test_with_a_token_every_request_carries_it_and_nothing_writes(daemon) -> None:
    view = StatusView(daemon, daemon.state_dir / LEDGER_FILE)
    config = WebConfig(port=0, bind="127.0.0.1", token_env="MAGELLAN_WEB_TOKEN")
    server = StatusServer(view, config, TOKEN)
    url = await server.start()
    good = {"Authorization": f"Bearer {TOKEN}"}
    try:
        async with aiohttp.ClientSession() as http:
            for path in ("", "api/status", "static/app.js", "api/trades?date=2024-11-29"):
                async with http.get(url + path) as r:
                    assert r.status == 401, path
                async with http.get(url + path, headers={"Authorization": "Bearer nope"}) as r:
                    assert r.status == 401, path
                async with http.get(url + path, headers=good) as r:
                    assert r.status == 200, path
            async with http.get(url + "api/status", headers=good) as r:
                status = await r.json()
                assert r.headers["Content-Security-Policy"].startswith("default-src 'self'")
            for method in ("POST", "PUT", "DELETE"):
                async with http.request(method, url + "api/status", headers=good) as r:
                    assert r.status == 405, method
            async with http.get(url + "api/trades?date=yesterday", headers=good) as r:
                assert r.status == 400
            async with http.get(url + "api/trades?date=2024-11-29", headers=good) as r:
                trades = await r.json()
    finally:
        await server.stop()
    assert status["mode"] == "paper"
    assert set(status["health"]) == {"ok", "reason"}
    assert status["positions"] == [] and status["open_orders"] == []
    assert set(status["pnl_today"]) == set(daemon.runners)
    assert trades == {"date": "2024-11-29", "fills": [], "closed_trades": []}


async def test_no_web_table_no_page_and_a_busy_port_is_an_error_not_a_crash(daemon, caplog) -> None:
    daemon.config = replace(daemon.config, web=None)
    assert await start_status_page(daemon) is None  # no [web] table: off
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        web = WebConfig(port=port, bind="127.0.0.1")
        daemon.config = replace(daemon.config, web=web)
        with caplog.at_level(logging.ERROR):
            assert await start_status_page(daemon) is None
    assert any(
        r.levelno == logging.ERROR
        and f"web status page NOT served: cannot listen on 127.0.0.1:{port}" in r.getMessage()
        for r in caplog.records
    ), caplog.text


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run)")
async def test_emergency_stops_and_unprotected_positions_show_in_red_in_chromium(daemon) -> None:
    """What the page's red box says of an emergency stop (a halt row the daemon wrote with
    source ``emergency``) and of a position the guard found unprotected, rendered by the
    page's own script in headless Chromium."""
    now = daemon.clock.now()
    daemon.ledger.halt("daily_trend", "emergency stop: 5 losing sessions", "emergency", now)
    daemon.guard.unprotected[("bear_trap", "GME")] = 1241
    server = StatusServer(
        StatusView(daemon, daemon.state_dir / LEDGER_FILE), WebConfig(port=0), None
    )
    url = await server.start()
    try:
        dom = await asyncio.to_thread(_chromium, "--dump-dom", url)
    finally:
        await server.stop()
    assert 'data-loaded="1"' in dom, dom[-2000:]
    box = dom[dom.index('id="alerts"') :]
    box = box[: box.index("</section>")]
    assert "hidden" not in box.split(">")[0], box
    assert "EMERGENCY STOP daily_trend: emergency stop: 5 losing sessions" in box, box
    assert "UNPROTECTED bear_trap GME qty 1241" in box, box
    assert "#alerts {" in (STATIC / "style.css").read_text()  # the box is the red one
    assert "border: 2px solid var(--red)" in (STATIC / "style.css").read_text()


async def test_a_failed_read_of_the_daily_closes_is_tried_again_a_minute_later(daemon) -> None:
    """The 30-session curve marks open positions at each session's close; when the broker's
    daily bars cannot be read, the view asks again later (a minute apart), instead of
    marking at fill prices until the next day."""
    now = daemon.clock.now()
    calendar = SessionCalendar()
    daemon.market.sessions = SessionBook(
        [
            Session(date=s.date, open=s.open, close=s.close)
            for s in calendar.sessions((now - timedelta(days=20)).date(), now.date())
        ]
    )
    t = now - timedelta(days=2)
    _fill(daemon, "mg-hs-AMC-buy", "AMC", "buy", 10, "4.5", t)
    view = StatusView(daemon, daemon.state_dir / LEDGER_FILE)
    with pytest.raises(BrokerError):  # the fixture's broker listens nowhere
        await view._refresh_closes()
    assert view._closes_day is None  # not read: not done
    await view._refresh_closes()  # within the minute: not asked again (no second error)
    view._closes_retry_at = 0.0  # a minute later
    with pytest.raises(BrokerError):
        await view._refresh_closes()


def _replayed(view: StatusView, daemon) -> tuple[list[dict[str, str]], str]:
    """The 30-session curve and the equity now from every fill, replayed from scratch."""
    now = daemon.clock.now()
    prices = view._prices()
    with ledger_read.read_only(daemon.state_dir / LEDGER_FILE) as conn:
        fills = ledger_read.fills_until(conn, now)
    curve = history.session_equity(fills, view._sessions(now), view._closes, now, prices)
    return (
        [{"date": session_date(p.t).isoformat(), "equity": _money(p.equity)} for p in curve],
        _money(history.equity_now(fills, prices)),
    )


async def test_the_curve_kept_fill_by_fill_equals_a_replay_of_every_fill(daemon) -> None:
    """The view keeps the book replayed up to the last fill it read and its state at each
    passed session close, and reads only the fills stored since. After each refresh, while
    fills come (on time, a day later, one timed sessions ago, one restated, one timed after
    the clock), its curve and equity are those of a replay of every fill; a refresh with no
    new fill reads no fill row; only what breaks the cursor makes it replay everything."""
    calendar = SessionCalendar()
    start = daemon.clock.now()
    daemon.market.sessions = SessionBook(
        [
            Session(date=s.date, open=s.open, close=s.close)
            for s in calendar.sessions(
                (start - timedelta(days=60)).date(), start.date() + timedelta(days=10)
            )
        ]
    )
    daemon.report.prices.update({"AAPL": "101.5", "MSFT": "398.25"})
    view = StatusView(daemon, daemon.state_dir / LEDGER_FILE)
    passed = [
        s
        for s in daemon.sessions.between(start.date() - timedelta(days=60), start.date())
        if s.close < start
    ]
    view._closes = {
        (symbol, s.date): Decimal(base) + i
        for i, s in enumerate(passed)
        for symbol, base in (("AAPL", "99"), ("MSFT", "390"))
    }
    n = 0

    def fill(symbol: str, side: str, qty: int, price: str, t) -> str:
        nonlocal n
        n += 1
        cid = f"mg-hs-{symbol}-{side}-{n}"
        _fill(daemon, cid, symbol, side, qty, price, t)
        return cid

    async def refresh() -> None:
        status = await view.status()
        assert (status["equity_sessions"], status["equity_now"]) == _replayed(view, daemon)

    # Fills over the last 20 sessions (a few a day, both symbols), then the first look.
    for i, s in enumerate(passed[-20:]):
        fill("AAPL", "buy", 10, f"{100 + i}.25", s.open + timedelta(minutes=30))
        fill("MSFT", "buy", 3, f"{395 + i}.5", s.open + timedelta(hours=1))
        fill("AAPL", "sell", 6, f"{101 + i}.75", s.close - timedelta(minutes=20))
    await refresh()
    assert view.rebuilds == 1
    read = view.fill_rows_read
    await refresh()  # nothing new: no fill row read, nothing replayed
    assert (view.fill_rows_read, view.rebuilds) == (read, 1)

    # Today's fills, then the clock past the close and into the next sessions.
    now = daemon.clock.now()
    fill("MSFT", "sell", 4, "401", now - timedelta(minutes=1))
    await refresh()
    assert (view.fill_rows_read, view.rebuilds) == (read + 1, 1)
    later = [
        s
        for s in daemon.sessions.between(now.date(), now.date() + timedelta(days=10))
        if s.open > now
    ]
    for s in later[:3]:
        daemon.clock.set(s.open + timedelta(hours=2))
        fill("AAPL", "buy", 5, "102.5", s.open + timedelta(hours=1))
        await refresh()
    assert view.rebuilds == 1

    # A fill booked late, timed three sessions ago (a reconciliation found it): replayed.
    old = later[0].open + timedelta(hours=3)
    fill("MSFT", "buy", 2, "380", old)
    await refresh()
    assert view.rebuilds == 2
    # A fill of today timed before one of the same symbol already applied: replayed.
    fill("AAPL", "sell", 1, "103", later[2].open + timedelta(minutes=30))
    await refresh()
    assert view.rebuilds == 3
    # Another symbol's fill a minute ago (after every kept close): applied on top.
    fill("MSFT", "sell", 1, "399", daemon.clock.now() - timedelta(minutes=1))
    await refresh()
    assert view.rebuilds == 3

    # A correction restates an old order's fills in place: replayed.
    first = "mg-hs-AAPL-buy-1"
    _restate(daemon, first, "trade_correct", 10, "99.5", daemon.clock.now())
    await refresh()
    assert view.rebuilds == 4

    # A fill timed after the clock (the broker's clock ahead of ours) counts once it is past.
    ahead = daemon.clock.now() + timedelta(minutes=2)
    fill("AAPL", "buy", 2, "104", ahead)
    await refresh()
    daemon.clock.set(ahead + timedelta(minutes=1))
    await refresh()
    read = view.fill_rows_read
    await refresh()
    assert (view.fill_rows_read, view.rebuilds) == (read, 4)
