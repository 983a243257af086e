"""The ledger's SQLite schema (idempotent: every statement is IF NOT EXISTS), and the one
migration an older ledger file needs."""

import sqlite3
import zlib

from magellan_daemon.domain import OPEN

_SCHEMA = """
-- Magellan ledger. Money and quantities are decimal strings. Times are ISO-8601 UTC.
-- Columns mirrored from the broker are prefixed broker_.
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA foreign_keys = ON;

CREATE TABLE IF NOT EXISTS evaluations (
    id INTEGER PRIMARY KEY,
    strategy TEXT NOT NULL,
    symbol TEXT NOT NULL,
    bar_time TEXT NOT NULL,
    decision TEXT NOT NULL,
    reason TEXT NOT NULL,
    indicator_values TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS evaluations_by_strategy ON evaluations (strategy, bar_time);

CREATE TABLE IF NOT EXISTS intents (
    id INTEGER PRIMARY KEY,
    strategy TEXT NOT NULL,
    symbol TEXT NOT NULL,
    action TEXT NOT NULL,
    leg TEXT NOT NULL,
    signal_time TEXT NOT NULL,
    reason TEXT NOT NULL,
    qty INTEGER,
    sizing TEXT,
    stop_price TEXT,
    execute TEXT NOT NULL,
    status TEXT NOT NULL,          -- pending, sent, blocked, expired, failed
    status_reason TEXT NOT NULL DEFAULT '',
    not_before TEXT,               -- earliest time to send (next open + delay)
    expires_at TEXT,               -- end of the session it must be sent in
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (strategy, symbol, signal_time, leg, action)
);
CREATE INDEX IF NOT EXISTS intents_by_status ON intents (status);

CREATE TABLE IF NOT EXISTS orders (
    client_order_id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    strategy TEXT NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    order_type TEXT NOT NULL,
    qty TEXT NOT NULL,
    stop_price TEXT,
    time_in_force TEXT NOT NULL,
    leg TEXT NOT NULL,
    signal_time TEXT NOT NULL,
    intent_id INTEGER REFERENCES intents (id),
    replaces TEXT,                 -- client_order_id of the order this one replaced
    status TEXT NOT NULL,
    filled_qty TEXT NOT NULL DEFAULT '0',
    filled_avg_price TEXT,
    broker_order_id TEXT UNIQUE,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_by_status ON orders (status);
CREATE INDEX IF NOT EXISTS orders_by_signal ON orders (strategy, symbol, signal_time);
-- A strategy's entries of one day (the router's daily entry limit), without its whole history.
CREATE INDEX IF NOT EXISTS orders_by_leg_created ON orders (strategy, leg, created_at);

CREATE TABLE IF NOT EXISTS order_events (
    id INTEGER PRIMARY KEY,
    client_order_id TEXT NOT NULL REFERENCES orders (client_order_id),
    ts TEXT NOT NULL,
    event TEXT NOT NULL,
    source TEXT NOT NULL,
    from_status TEXT NOT NULL,
    to_status TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);

{fills}

CREATE TABLE IF NOT EXISTS positions (
    strategy TEXT NOT NULL,
    symbol TEXT NOT NULL,
    account TEXT NOT NULL,
    qty TEXT NOT NULL,
    avg_price TEXT NOT NULL,
    opened_at TEXT,
    realized_open TEXT NOT NULL DEFAULT '0',   -- realised P&L since the position opened
    sold_qty TEXT NOT NULL DEFAULT '0',
    sold_value TEXT NOT NULL DEFAULT '0',
    bought_qty TEXT NOT NULL DEFAULT '0',
    PRIMARY KEY (strategy, symbol)
);

CREATE TABLE IF NOT EXISTS closed_trades (
    id INTEGER PRIMARY KEY,
    strategy TEXT NOT NULL,
    symbol TEXT NOT NULL,
    qty TEXT NOT NULL,
    entry_price TEXT NOT NULL,
    exit_price TEXT NOT NULL,
    pnl TEXT NOT NULL,
    entry_time TEXT NOT NULL,
    exit_time TEXT NOT NULL,
    session_date TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS pnl_daily (
    strategy TEXT NOT NULL,
    session_date TEXT NOT NULL,
    realized TEXT NOT NULL,
    PRIMARY KEY (strategy, session_date)
);

CREATE TABLE IF NOT EXISTS halts (
    strategy TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    since TEXT NOT NULL,
    source TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS strategy_state (
    strategy TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- One row per symbol of a strategy whose snapshot is saved per symbol (strategy_states.py);
-- its strategy_state row then holds the rest of the snapshot.
CREATE TABLE IF NOT EXISTS strategy_symbol_state (
    strategy TEXT NOT NULL,
    symbol TEXT NOT NULL,
    state TEXT NOT NULL,
    last_bar TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (strategy, symbol)
) WITHOUT ROWID;

-- Corporate actions the ledger applied, each exactly once: a split (kind 'split') or a cash
-- dividend (kind 'cash_dividend') of one symbol on one ex-date (corporate.py).
CREATE TABLE IF NOT EXISTS corporate_actions (
    symbol TEXT NOT NULL,
    ex_date TEXT NOT NULL,
    kind TEXT NOT NULL,
    action_type TEXT NOT NULL,     -- forward_split, reverse_split, cash_dividend
    new_rate TEXT NOT NULL,
    old_rate TEXT NOT NULL,
    rate TEXT NOT NULL,            -- cash per share of a dividend
    applied_at TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (symbol, ex_date, kind)
);

-- What each applied corporate action did to each strategy's position in the symbol.
CREATE TABLE IF NOT EXISTS corporate_action_bookings (
    symbol TEXT NOT NULL,
    ex_date TEXT NOT NULL,
    kind TEXT NOT NULL,
    strategy TEXT NOT NULL,
    account TEXT NOT NULL,
    qty_before TEXT NOT NULL,
    qty_after TEXT NOT NULL,
    avg_before TEXT NOT NULL,
    avg_after TEXT NOT NULL,
    cash TEXT NOT NULL,            -- cash in lieu or dividend credited to the strategy
    realized TEXT NOT NULL,        -- P&L it realised (in that day's pnl_daily)
    PRIMARY KEY (symbol, ex_date, kind, strategy),
    FOREIGN KEY (symbol, ex_date, kind) REFERENCES corporate_actions (symbol, ex_date, kind)
);

CREATE TABLE IF NOT EXISTS discrepancies (
    id INTEGER PRIMARY KEY,
    ts TEXT NOT NULL,
    kind TEXT NOT NULL,
    account TEXT NOT NULL,
    symbol TEXT NOT NULL,
    detail TEXT NOT NULL
);
"""


# The fills table, in the schema and in the migration that rebuilds an older one.
_FILLS = """
CREATE TABLE {name} (
    id INTEGER PRIMARY KEY,
    client_order_id TEXT NOT NULL REFERENCES orders (client_order_id),
    broker_order_id TEXT NOT NULL,
    broker_execution_id TEXT UNIQUE,
    account TEXT NOT NULL,
    strategy TEXT NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    qty TEXT NOT NULL,
    price TEXT NOT NULL,
    cum_qty TEXT NOT NULL,
    ts TEXT NOT NULL,
    source TEXT NOT NULL,
    realized TEXT NOT NULL DEFAULT '0',   -- P&L this execution realised
    voided INTEGER NOT NULL DEFAULT 0,    -- 1: reversed by a trade_bust / trade_correct
    revision INTEGER NOT NULL DEFAULT 0,  -- bumped by each restatement of the order's fills
    -- 1: priced from the order's (rounded) average, not from the execution itself; the
    -- execution's own price corrects it when it arrives (stream fill or FILL activity)
    price_derived INTEGER NOT NULL DEFAULT 0,
    UNIQUE (broker_order_id, cum_qty, revision)
);
"""
_FILLS_COLUMNS = (
    "id, client_order_id, broker_order_id, broker_execution_id, account, strategy, symbol, "
    "side, qty, price, cum_qty, ts, source"
)
# One strategy's fills of a time range (a New York day for the CSV trade log, status).
FILLS_INDEX = "CREATE INDEX IF NOT EXISTS fills_by_strategy_ts ON fills (strategy, ts)"
# The orders still working, a handful, found without reading every order the strategy ever
# wrote (the plan for "strategy = ? AND status IN (?...)" was orders_by_signal, a scan of the
# strategy's whole history on every entry, stop and guard check). SQLite uses a partial
# index only for a query whose WHERE names the same status list literally (bound parameters
# cannot prove it), so the open-order queries use OPEN_STATUS_SQL itself; the index's name
# carries a digest of the list, so a changed list makes a new index, never a stale one.
OPEN_STATUS_SQL = "status IN (" + ",".join(f"'{s.value}'" for s in sorted(OPEN)) + ")"
OPEN_ORDERS_INDEX = (
    f"CREATE INDEX IF NOT EXISTS orders_open_{zlib.crc32(OPEN_STATUS_SQL.encode()):08x} "
    f"ON orders (strategy, symbol) WHERE {OPEN_STATUS_SQL}"
)
# Every change to a stored fill row (a bust or correction voids rows, an execution's own
# price reprices one, a rebuild rewrites their realised P&L) is counted, in the writer's own
# transaction: a reader that keeps a running replay of the fills (the status page reads only
# those after the last id it read) learns from one row, in the same snapshot as the new
# fills, that rows it already applied have changed. A new fill is not counted: it has a new
# id. Only rare paths update fills, so a trigger per row costs trading nothing.
FILLS_REWRITES = """
CREATE TABLE IF NOT EXISTS fills_rewrites (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    count INTEGER NOT NULL
);
INSERT OR IGNORE INTO fills_rewrites (id, count) VALUES (1, 0);
CREATE TRIGGER IF NOT EXISTS fills_updated AFTER UPDATE ON fills
BEGIN UPDATE fills_rewrites SET count = count + 1 WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS fills_deleted AFTER DELETE ON fills
BEGIN UPDATE fills_rewrites SET count = count + 1 WHERE id = 1; END;
"""
SCHEMA = (
    _SCHEMA.replace("{fills}", _FILLS.replace("{name}", "IF NOT EXISTS fills"))
    + FILLS_INDEX
    + ";\n"
    + OPEN_ORDERS_INDEX
    + ";\n"
    + FILLS_REWRITES
)
# Ledgers written before fills kept their realised P&L and restatements: same rows, three
# more columns and a unique key that includes the revision.
_FILLS_MIGRATION = (
    _FILLS.replace("{name}", "fills_new")
    + f"INSERT INTO fills_new ({_FILLS_COLUMNS}) SELECT {_FILLS_COLUMNS} FROM fills;\n"
    + "DROP TABLE fills;\nALTER TABLE fills_new RENAME TO fills;\n"
)


def migrate(conn: sqlite3.Connection) -> bool:
    """Bring an older ledger file to this schema; True when something was changed."""
    changed = _migrate_fills(conn)
    # After the fills table may have been rebuilt (which drops its indexes).
    indexes = {row[1] for row in conn.execute("PRAGMA index_list(fills)")}
    if "fills_by_strategy_ts" not in indexes:
        conn.execute(FILLS_INDEX)
        changed = True
    # ... and its triggers.
    triggers = {
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'fills'"
        )
    }
    if not {"fills_updated", "fills_deleted"} <= triggers:
        conn.executescript(FILLS_REWRITES)
        changed = True
    return changed


def _migrate_fills(conn: sqlite3.Connection) -> bool:
    columns = {row[1] for row in conn.execute("PRAGMA table_info(fills)")}
    if "revision" in columns:
        if "price_derived" in columns:
            return False
        conn.execute("ALTER TABLE fills ADD COLUMN price_derived INTEGER NOT NULL DEFAULT 0")
        return True
    # The copy moves rows, it checks nothing: keys are checked again once it is done.
    conn.executescript(
        "PRAGMA foreign_keys = OFF; BEGIN IMMEDIATE;"
        + _FILLS_MIGRATION
        + "COMMIT; PRAGMA foreign_keys = ON;"
    )
    return True
