"""The Magellan trading daemon. Each folder owns one concept:

- ``domain`` (module), ``timefmt``, ``errors``: the values every layer speaks.
- ``execution``: the order path from an intent to the broker's word: router lanes, entry
  gate, order path, order watch, the event sink, the position guard.
- ``reconciliation``: bringing the ledger back to the broker's truth.
- ``ledger``: SQLite persistence, the order state machine, the control channel.
- ``runtime``: strategies at work: runners, bar feed, sessions, jobs and the scheduler.
- ``node``: the daemon itself: its lifecycle, modes, health, supervised tasks.
- ``adapters``: the broker port's implementations (Alpaca over HTTP, in-process).
- ``observability``: logs, metrics, sd_notify.
- ``config``, ``cli`` (the top: imports anything), ``backtest``, ``web``, ``notify``.
"""
