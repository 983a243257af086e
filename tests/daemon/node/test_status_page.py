"""The status page's HTTP layer on a real (not started) daemon and its real ledger: GET
only, the bearer token when one is set, and answers shaped as the README says."""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import replace
from datetime import timedelta

import aiohttp
import pytest

from magellan_daemon.errors import BrokerError
from magellan_daemon.ledger.store import LEDGER_FILE
from magellan_daemon.sessions import SessionBook
from magellan_daemon.web.server import STATIC, StatusServer, start_status_page
from magellan_daemon.web.settings import WebConfig
from magellan_daemon.web.view import StatusView
from magellan_sim.market.calendar import SessionCalendar
from strategies.api.session import Session
from tests.daemon.node.test_emergency_stop import _fill
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
