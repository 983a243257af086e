"""``magellan backtest``: the daemon's own strategies, router, order path and ledger against
the simulator's exchange core, in one process on virtual time."""
