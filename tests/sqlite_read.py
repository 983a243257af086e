"""Read a ledger file the way an operator would with ``sqlite3``: a separate read-only
connection, so a test sees what was committed, not what one connection holds."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any


def query(path: Path, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """Rows of ``sql`` on the SQLite file at ``path``, as dicts."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql, args)]
    finally:
        conn.close()
