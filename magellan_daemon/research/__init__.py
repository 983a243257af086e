"""Parameter sweeps and walk-forward validation over the backtest."""
