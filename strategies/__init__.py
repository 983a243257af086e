"""Pure strategies: bars and fills in, order intents out (no I/O, nothing of the daemon).

- ``api``: the values crossing the boundary, the protocol, parameters, descriptors.
- ``lib``: indicators and rules the strategies share.
- ``daily_trend``, ``hourly_swing``, ``bear_trap/``: the three strategies.
- ``registry``: every strategy by the name its config uses (the only module naming them all).
"""
