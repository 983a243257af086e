"""The simulated market: bars per symbol and timeframe, the NYSE calendar, the synthetic
generator, the minute tape and corporate actions as prices see them. Imports nothing of the
exchange or the server."""
