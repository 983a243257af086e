"""The seed's CSV trade log: ``{log_dir}/{strategy}_trades_{YYYYMMDD}.csv``.

Header ``timestamp,symbol,action,qty,price,order_id``, one row per fill with the fill price
(``order_id`` is the broker's order id). The files are *derived* from the ledger's fills
table: after each fill the day's file is rewritten atomically (temp file + rename). A crash
at any instant therefore leaves either the old or the new file, and the next write (or
``rebuild_all`` at startup) makes it equal to the ledger again: every fill exactly once.

In the daemon the rewrite happens off the event loop (``TradeLogWriter``): the fill path
only marks the (strategy, day) dirty; one writer task reads the rows on the loop and writes
and fsyncs the file in a thread, one file at a time, so an older rewrite can never land
after a newer one. A voided fill (a broker's trade bust or correction) is not a trade.
"""

from __future__ import annotations

import asyncio
import csv
import os
from datetime import date
from pathlib import Path

from magellan_daemon.ledger.store import Ledger
from magellan_daemon.timefmt import iso, parse_iso, session_date

HEADER = ("timestamp", "symbol", "action", "qty", "price", "order_id")


def trade_log_path(log_dir: Path, strategy: str, day: date) -> Path:
    """The file for one strategy's fills on one New York date."""
    return log_dir / f"{strategy}_trades_{day:%Y%m%d}.csv"


def day_rows(ledger: Ledger, strategy: str, day: date) -> list[tuple[str, ...]]:
    """The CSV rows of one strategy's day, from the ledger (voided fills left out)."""
    return [
        (
            iso(parse_iso(fill["ts"])),
            fill["symbol"],
            fill["side"].upper(),
            fill["qty"],
            fill["price"],
            fill["broker_order_id"],
        )
        for fill in ledger.fills(strategy, day)
        if not fill["voided"]
    ]


def write_rows(path: Path, rows: list[tuple[str, ...]]) -> None:
    """Replace ``path`` atomically with the header and ``rows`` (fsynced before the rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(HEADER)
        writer.writerows(rows)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)


def write_day(ledger: Ledger, log_dir: Path, strategy: str, day: date) -> Path:
    """Rewrite the strategy's file for ``day`` from the ledger; return its path."""
    path = trade_log_path(log_dir, strategy, day)
    write_rows(path, day_rows(ledger, strategy, day))
    return path


def rebuild_all(ledger: Ledger, log_dir: Path) -> int:
    """Rewrite every (strategy, day) file that has fills; return how many were written."""
    days = {(f["strategy"], session_date(parse_iso(f["ts"]))) for f in ledger.fills()}
    for strategy, day in sorted(days):
        write_day(ledger, log_dir, strategy, day)
    return len(days)


class TradeLogWriter:
    """Rewrites the days marked dirty, off the event loop, one file at a time."""

    def __init__(self, ledger: Ledger, log_dir: Path) -> None:
        self._ledger = ledger
        self._log_dir = log_dir
        self._dirty: set[tuple[str, date]] = set()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    def mark(self, strategy: str, day: date) -> None:
        """The strategy's file for ``day`` must be rewritten (never blocks)."""
        self._dirty.add((strategy, day))
        self._idle.clear()
        self._wake.set()

    async def run(self) -> None:
        """Write dirty files forever (a failure to write ends the task: the daemon's
        supervision makes that fatal, and startup's ``rebuild_all`` repairs the files)."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._dirty:
                strategy, day = self._dirty.pop()
                rows = day_rows(self._ledger, strategy, day)
                path = trade_log_path(self._log_dir, strategy, day)
                await asyncio.to_thread(write_rows, path, rows)
            if not self._dirty:
                self._idle.set()

    async def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every marked file is written; False on timeout."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        except TimeoutError:
            return False
