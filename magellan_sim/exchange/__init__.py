"""The simulated broker: accounts, orders, matching, pending cancels and replaces,
pre-trade checks, faults, hooks and the wire shapes of its answers; plain synchronous code
on the shared clock. Imports the market, never the server."""
