"""The status page's data: an in-memory part read on the loop (mode, health, guard, jobs,
prices: attribute reads only) and a ledger part read in a worker thread through a read-only
connection. Nothing here writes or calls the broker's order endpoints."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections import deque
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from magellan_core.clock import Clock
from magellan_daemon.adapters.alpaca.rest import AlpacaBroker
from magellan_daemon.adapters.alpaca.stream import SupervisedStream
from magellan_daemon.execution.position_guard import PositionGuard
from magellan_daemon.execution.router import OrderRouter
from magellan_daemon.runtime.scheduler import JobScheduler
from magellan_daemon.runtime.strategy_runner import StrategyRunner
from magellan_daemon.sessions import SessionBook
from magellan_daemon.timefmt import NEW_YORK, iso, session_date
from magellan_daemon.web import history, ledger_read
from magellan_daemon.web.settings import WebConfig

if TYPE_CHECKING:
    from strategies.api.session import Session

log = logging.getLogger(__name__)
HISTORY_SESSIONS = 30
CLOSES_RETRY_SECONDS = 60.0  # wall seconds between two tries of a failed daily-closes read
SAMPLE_SECONDS = 5.0  # wall seconds between two points of today's curve (at most one a minute)
TODAY_POINTS = 1000


class PriceSource(Protocol):
    """The broker's last prices, as the daemon's status report keeps them."""

    @property
    def prices(self) -> dict[str, str]:
        """Symbol -> the broker's last price."""


class PageConfig(Protocol):
    """The part of the daemon's configuration the page reads."""

    @property
    def web(self) -> WebConfig | None:
        """The ``[web]`` table (None: no page)."""

    @property
    def path(self) -> Path:
        """The config file (the token's error names it)."""


class DaemonStatus(Protocol):
    """What the status page reads of the running daemon (``node.daemon.Daemon`` has it): the
    page depends on this, never on the node, which starts the page."""

    @property
    def config(self) -> PageConfig:
        """The daemon's configuration."""

    @property
    def state_dir(self) -> Path:
        """Where the ledger lives."""

    @property
    def mode(self) -> str:
        """sim, paper or live."""

    @property
    def ready(self) -> asyncio.Event:
        """Set at READY."""

    @property
    def clock(self) -> Clock:
        """The daemon's clock."""

    @property
    def report(self) -> PriceSource:
        """The status report (its prices)."""

    @property
    def trade_streams(self) -> Mapping[str, SupervisedStream]:
        """Each account's trade-update stream."""

    @property
    def router(self) -> OrderRouter:
        """The order router."""

    @property
    def guard(self) -> PositionGuard:
        """The position guard."""

    @property
    def scheduler(self) -> JobScheduler:
        """The job scheduler."""

    @property
    def runners(self) -> Mapping[str, StrategyRunner]:
        """The running strategies."""

    @property
    def sessions(self) -> SessionBook:
        """The broker's calendar."""

    @property
    def brokers(self) -> Mapping[str, AlpacaBroker]:
        """Each account's REST client."""

    def health(self) -> tuple[bool, str]:
        """(healthy, reason)."""


class StatusView:
    """Builds ``/api/status`` and ``/api/trades`` for one daemon."""

    def __init__(self, daemon: DaemonStatus, ledger_path: Path) -> None:
        self._d = daemon
        self._path = ledger_path
        self._closes: dict[tuple[str, date], Decimal] = {}
        self._closes_day: date | None = None
        self._closes_retry_at = 0.0  # loop time before which a failed closes read waits
        self._today: deque[tuple[str, str]] = deque(maxlen=TODAY_POINTS)
        self._today_date: date | None = None
        # The fills replayed so far (the curves' book), read on from its cursor. status()
        # runs from the sampler and from requests, each in a worker thread: one at a time.
        self._running: history.RunningBook | None = None
        self._running_rewrites: int | None = None  # the ledger's count of changed fill rows then
        self._running_lock = threading.Lock()
        self.fill_rows_read = 0  # fill rows read for the curves, ever
        self.rebuilds = 0  # replays of every fill: the first, then each time the cursor broke

    # -- the in-memory part (on the loop) -------------------------------------------------

    def live(self) -> dict[str, Any]:
        """What the daemon holds in memory: cheap attribute reads, no I/O."""
        d = self._d
        ok, reason = d.health()
        return {
            "mode": d.mode,
            "health": {"ok": ok, "reason": reason},
            "ready": d.ready.is_set(),
            "now": iso(d.clock.now()),
            "streams": {a: s.stats.connected for a, s in d.trade_streams.items()},
            "entries_stopped": d.router.entries_stopped,
            "guard": d.guard.describe(),
            "next_jobs": [{"name": j.name, "when": iso(j.when)} for j in d.scheduler.planned()[:8]],
            "strategies": sorted(d.runners),
        }

    def _prices(self) -> dict[str, Decimal]:
        found = {}
        for symbol, text in list(self._d.report.prices.items()):
            try:
                found[symbol] = Decimal(text)
            except InvalidOperation:
                continue
        return found

    def _sessions(self, now: datetime) -> list[Session]:
        today = session_date(now)
        book = self._d.sessions
        return book.between(today - timedelta(days=HISTORY_SESSIONS * 2), today)[-HISTORY_SESSIONS:]

    # -- the whole status ------------------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        """``/api/status``: the in-memory part, then the ledger part off the loop."""
        live = self.live()
        now = self._d.clock.now()
        prices = self._prices()
        sessions = self._sessions(now)
        names = sorted(self._d.runners)
        book = await asyncio.to_thread(
            self._read_book, now, prices, sessions, dict(self._closes), names
        )
        self._add_today_point(now, book["equity_now"])
        status = {**live, **book}
        status["equity_today"] = [{"t": t, "equity": e} for t, e in self._today]
        return status

    def _read_book(
        self,
        now: datetime,
        prices: dict[str, Decimal],
        sessions: list[Session],
        closes: dict[tuple[str, date], Decimal],
        names: list[str],
    ) -> dict[str, Any]:
        """The ledger part (in a worker thread: touches nothing of the daemon's)."""
        today = session_date(now)
        with ledger_read.read_only(self._path) as conn:
            # One snapshot for every read: the new fills and the count of changed ones agree.
            conn.execute("BEGIN")
            held = ledger_read.positions(conn)
            orders = ledger_read.open_orders(conn)
            pnl = ledger_read.pnl_on(conn, today)
            halts = ledger_read.halts(conn)
            signals = ledger_read.signals(conn)
            with self._running_lock:
                running = self._advanced(conn, now, sessions)
                curve = running.curve(closes, prices)
                equity = running.equity_now(prices)
        for row in held:
            price = prices.get(row["symbol"])
            row["last_price"] = None if price is None else str(price)
            row["unrealized_pl"] = (
                None
                if price is None
                else str(
                    (Decimal(row["qty"]) * (price - Decimal(row["avg_entry_price"]))).quantize(
                        Decimal("0.01")
                    )
                )
            )
        pnl_today = {name: pnl.get(name, "0") for name in sorted({*names, *pnl})}
        return {
            "positions": held,
            "open_orders": orders,
            "pnl_today": pnl_today,
            "halts": halts,
            "signals": signals,
            "equity_sessions": [
                {"date": session_date(p.t).isoformat(), "equity": _money(p.equity)} for p in curve
            ],
            "equity_now": _money(equity),
        }

    def _advanced(
        self, conn: sqlite3.Connection, now: datetime, sessions: list[Session]
    ) -> history.RunningBook:
        """The running book brought to ``now`` with the fills stored after its cursor; every
        fill replayed into a new one when those cannot go on top: a stored fill changed (a
        bust, a correction, a repricing), a fill timed before a kept session close (booked
        late) or before its symbol's last one, the clock or the calendar went back, or the
        ledger holds fewer fills than were read (another file)."""
        rewrites, top = ledger_read.fills_mark(conn)
        book = self._running
        if (
            book is not None
            and rewrites is not None
            and rewrites == self._running_rewrites
            and top >= book.cursor
        ):
            new = ledger_read.fills_after(conn, book.cursor) if top > book.cursor else []
            self.fill_rows_read += len(new)
            if book.advance(new, sessions, now):
                return book
        book = history.RunningBook()
        every = ledger_read.fills_after(conn, 0)
        self.fill_rows_read += len(every)
        self.rebuilds += 1
        if not book.advance(every, sessions, now):
            raise AssertionError("a new book takes its fills in any order")
        self._running, self._running_rewrites = book, rewrites
        return book

    def _add_today_point(self, now: datetime, equity: str) -> None:
        """One point a minute (virtual) for today's curve; a new day starts a new curve."""
        today = session_date(now)
        if today != self._today_date:
            self._today.clear()
            self._today_date = today
        stamp = iso(now.replace(second=0, microsecond=0))
        if self._today and self._today[-1][0] == stamp:
            self._today[-1] = (stamp, equity)
        else:
            self._today.append((stamp, equity))

    async def trades(self, day: date) -> dict[str, Any]:
        """``/api/trades?date=``: the fills and round trips of one New York date."""
        with_conn = ledger_read.trades_on

        def read() -> dict[str, Any]:
            with ledger_read.read_only(self._path) as conn:
                return with_conn(conn, day)

        return await asyncio.to_thread(read)

    # -- background: today's curve, the daily closes -----------------------------------------

    async def sample_forever(self) -> None:
        """Keep today's curve going when nobody looks, and the daily closes that mark the
        past sessions fresh (one bars request a day)."""
        while True:
            try:
                await self._refresh_closes()
                await self.status()
            except Exception as exc:  # the page goes stale; trading is not concerned
                log.warning("status page: could not refresh its view: %s", exc)
            await asyncio.sleep(SAMPLE_SECONDS)

    async def _refresh_closes(self) -> None:
        d = self._d
        now = d.clock.now()
        today = session_date(now)
        if self._closes_day == today or not d.brokers:
            return
        sessions = self._sessions(now)
        if not sessions:
            return
        start = sessions[0].open

        def symbols() -> list[str]:
            with ledger_read.read_only(self._path) as conn:
                return sorted({f["symbol"] for f in ledger_read.fills_until(conn, now)})

        loop = asyncio.get_running_loop()
        if loop.time() < self._closes_retry_at:
            return  # the last read failed: ask again at most once a minute
        wanted = await asyncio.to_thread(symbols)
        if not wanted:
            self._closes_day = today
            return
        broker = next(iter(d.brokers.values()))
        self._closes_retry_at = loop.time() + CLOSES_RETRY_SECONDS
        found = await broker.bars(wanted, "1Day", start - timedelta(days=1), now)
        self._closes_day = today  # only once read: a failed read is tried again
        self._closes = {
            (bar.symbol, bar.t.astimezone(NEW_YORK).date()): Decimal(str(bar.close))
            for rows in found.values()
            for bar in rows
        }


def _money(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.01")))
