"""The seed's CSV trade log: ``{log_dir}/{strategy}_trades_{YYYYMMDD}.csv``.

Header ``timestamp,symbol,action,qty,price,order_id``, one row per fill with the fill price
(``order_id`` is the broker's order id). The files are *derived* from the ledger's fills
table: after each fill the day's file is rewritten atomically (temp file + rename). A crash
at any instant therefore leaves either the old or the new file, and the next write (or
``rebuild_all`` at startup) makes it equal to the ledger again: every fill exactly once.
"""

from __future__ import annotations

import csv
import os
from datetime import date
from pathlib import Path

from magellan_daemon.ledger.store import Ledger, parse_iso, session_date

HEADER = ("timestamp", "symbol", "action", "qty", "price", "order_id")


def trade_log_path(log_dir: Path, strategy: str, day: date) -> Path:
    """The file for one strategy's fills on one New York date."""
    return log_dir / f"{strategy}_trades_{day:%Y%m%d}.csv"


def write_day(ledger: Ledger, log_dir: Path, strategy: str, day: date) -> Path:
    """Rewrite the strategy's file for ``day`` from the ledger; return its path."""
    path = trade_log_path(log_dir, strategy, day)
    log_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(HEADER)
        for fill in ledger.fills(strategy, day):
            writer.writerow(
                (
                    parse_iso(fill["ts"]).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                    fill["symbol"],
                    fill["side"].upper(),
                    fill["qty"],
                    fill["price"],
                    fill["broker_order_id"],
                )
            )
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)
    return path


def rebuild_all(ledger: Ledger, log_dir: Path) -> int:
    """Rewrite every (strategy, day) file that has fills; return how many were written."""
    days = {(f["strategy"], session_date(parse_iso(f["ts"]))) for f in ledger.fills()}
    for strategy, day in sorted(days):
        write_day(ledger, log_dir, strategy, day)
    return len(days)
