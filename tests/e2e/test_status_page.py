"""The status page, end to end: the daemon (a subprocess) trades Bear Trap against the
simulator, and a real headless Chromium (Debian's ``chromium``) renders the page: it shows
the position the broker holds, with its stop. ``/api/status`` and ``/api/trades`` say the
same.

Set ``STATUS_PAGE_SCREENSHOT=docs/status-page.png`` to refresh the README's screenshot.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from decimal import Decimal
from pathlib import Path

import pytest

from tests.e2e.bars import early_close_crash_bars
from tests.e2e.harness import REPO, SPEED, Daemon, Sim, config_dir, ny, wait_for

CHROMIUM = shutil.which("chromium")
pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run)"),
]
URL_LINE = re.compile(r"web status page at (http://127\.0\.0\.1:\d+/)")


def _get(url: str) -> object:
    with urllib.request.urlopen(url, timeout=10) as response:  # loopback only
        return json.loads(response.read())


def _cli(*args: str, daemon: Daemon) -> None:
    """A ``magellan`` operator command on the daemon's config and state."""
    where = ["--config", str(daemon.config), "--state-dir", str(daemon.state_dir)]
    subprocess.run(
        [sys.executable, "-m", "magellan_daemon", *args, *where],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=60,
    )


def _chromium(*args: str) -> str:
    """Run headless Chromium on a loopback page; its stdout. The virtual-time budget lets
    the page's script fetch and render before the DOM is dumped."""
    assert CHROMIUM is not None
    done = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",  # root in a container
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--virtual-time-budget=8000",
            "--window-size=1200,1000",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=True,
    )
    return done.stdout


async def test_the_page_in_chromium_shows_what_the_broker_holds(
    bars_dir: Path, tmp_path: Path
) -> None:
    bars = early_close_crash_bars(bars_dir, tmp_path)
    config = config_dir(tmp_path, {"magellan.toml": ("port = 8780", "port = 0")})
    async with Sim(bars, ny("2024-11-29", "12:20")) as sim:
        daemon = Daemon(config, tmp_path / "state", sim.url, tmp_path / "d.log")
        daemon.start()
        await daemon.wait_ready()
        await daemon.wait_log("web status page at http://127.0.0.1:")
        found = URL_LINE.search(daemon.current_log())
        assert found, daemon.current_log()[-2000:]
        url = found.group(1)
        await sim.run_until(ny("2024-11-29", "12:40"), speed=SPEED / 2)
        await wait_for(
            lambda: daemon.query(
                "SELECT 1 FROM orders WHERE strategy='bear_trap' AND symbol='GME' "
                "AND order_type='stop' AND status='new'"
            ),
            30,
            "GME bought and under its stop",
            daemon,
        )
        sim.pause()
        held = sim.positions()
        assert held.get("GME", 0) > 0, held

        def priced() -> bool:  # the daemon reads the broker's prices every ~10 s
            status = _get(url + "api/status")
            return any(p["last_price"] for p in status["positions"])  # type: ignore[index]

        await wait_for(priced, 60, "the broker's last price on the page", daemon)
        status = await asyncio.to_thread(_get, url + "api/status")
        dom = await asyncio.to_thread(_chromium, "--dump-dom", url)
        shot = tmp_path / "status-page.png"
        await asyncio.to_thread(_chromium, f"--screenshot={shot}", url)
        trades = await asyncio.to_thread(_get, url + "api/trades?date=2024-11-29")
        # A halt (the CLI writes it, the daemon notices it) shows in the red box.
        await asyncio.to_thread(
            functools.partial(_cli, "halt", "bear_trap", "--reason", "news day", daemon=daemon)
        )
        await daemon.wait_log("bear_trap is HALTED: news day")
        halted = await asyncio.to_thread(_chromium, "--dump-dom", url)
        assert await daemon.stop() == 0

    # The JSON: the broker's position, with its stop, the price the broker gave.
    assert isinstance(status, dict)
    assert status["mode"] == "paper" and status["health"]["ok"], status["health"]
    ours = [p for p in status["positions"] if p["symbol"] == "GME"]
    assert len(ours) == 1 and ours[0]["strategy"] == "bear_trap"
    gme = ours[0]
    assert set(gme) >= {
        "strategy",
        "symbol",
        "qty",
        "avg_entry_price",
        "last_price",
        "unrealized_pl",
        "stop_price",
    }, gme
    assert Decimal(gme["qty"]) == Decimal(str(held["GME"]))
    assert gme["stop_price"] is not None and gme["last_price"] is not None
    expected_pl = Decimal(gme["qty"]) * (
        Decimal(gme["last_price"]) - Decimal(gme["avg_entry_price"])
    )
    assert abs(Decimal(gme["unrealized_pl"]) - expected_pl) <= Decimal("0.01")
    assert set(status["pnl_today"]) >= {"bear_trap"}
    assert any(o["symbol"] == "GME" and o["type"] == "stop" for o in status["open_orders"])
    assert status["equity_sessions"] and status["equity_sessions"][-1]["date"] == "2024-11-29"
    assert status["next_jobs"] and status["signals"]
    # The page, rendered by Chromium from the package's own script: the same rows, every
    # position the broker reports and nothing else.
    assert 'data-loaded="1"' in dom, dom[-3000:]
    table = dom[dom.index('id="positions"') :]
    table = table[: table.index("</table>")]
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", table)
    shown: dict[str, Decimal] = {}
    for strategy, symbol, qty in zip(cells[0::7], cells[1::7], cells[2::7], strict=True):
        assert strategy in status["pnl_today"], strategy
        shown[symbol] = shown.get(symbol, Decimal(0)) + Decimal(qty)
    assert shown == {symbol: Decimal(str(qty)) for symbol, qty in held.items()}
    row = cells[cells.index("GME") - 1 : cells.index("GME") + 6]
    assert row[:3] == ["bear_trap", "GME", gme["qty"]], row
    assert row[6] != "none"  # the stop is shown
    assert "http" not in re.sub(r'(href|src)="/[^"]*"', "", dom).replace(
        "http://www.w3.org/2000/svg", ""
    )  # nothing from anywhere but the daemon
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("STATUS_PAGE_SCREENSHOT"):
        shutil.copy(shot, os.environ["STATUS_PAGE_SCREENSHOT"])
    assert isinstance(trades, dict)
    assert any(f["symbol"] == "GME" and f["side"] == "buy" for f in trades["fills"])
    alerts = halted[halted.index('id="alerts"') :]
    alerts = alerts[: alerts.index("</section>")]
    assert "hidden" not in alerts.split(">")[0]
    assert "HALTED bear_trap: news day" in alerts, alerts
    assert 'id="alerts" hidden' in dom  # nothing to say before the halt
