"""The Alpaca-compatible paper-trading simulator, strict as the broker or stricter.

- ``market``: the bars (real or synthetic), the NYSE calendar, the minute tape, corporate
  actions as prices see them. Imports nothing of ``exchange`` or ``server``.
- ``exchange``: the paper broker, synchronous and driven by ``magellan_core.clock``:
  accounts, orders and their matching, pending cancels and replaces, pre-trade checks,
  faults and hooks, and Alpaca's wire shapes; a small ``Exchange`` owning its desks
  (``orders``, ``accounts``, ``data``) and its core. Imports ``market``.
- ``server``: Alpaca's REST routes and both websockets on one loopback aiohttp port,
  authentication and the rate limit. Imports ``exchange`` and ``market``.
- ``factory`` builds an exchange from plain options; ``cli`` is ``magellan sim``.

Imports nothing of ``magellan_daemon`` or ``strategies`` (checked by ``make lint``).
"""
