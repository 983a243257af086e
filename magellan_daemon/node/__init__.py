"""The daemon as a process, one concept per module: ``kernel`` (the trading parts live and
backtest share, wired once), ``daemon`` (what only the live daemon adds: wiring, the startup
script, fatal paths), ``market_data`` (calendar, history, minute bars), ``trade_streams``,
``guard_clock``, ``emergency``, ``teardown``, ``health`` (the report, from a value of the
parts it reads), ``modes``, ``commands``, ``tasks``. Imports every layer below; only the
CLI imports it, and the backtest imports ``kernel``.
"""
