"""The durable ledger: SQLite in WAL mode, the order state machine, the CSV trade log."""
