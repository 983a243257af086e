"""The Alpaca adapter: the only package that imports ``alpaca``.

``rest.AlpacaBroker`` wraps the blocking REST clients (thread pool, HTTP timeout, shared
throttle, no SDK retries); ``stream`` runs the trade-updates and market-data websockets
inside our event loop; ``convert`` turns alpaca-py's loose types into ``domain`` values at
this edge and nowhere else; ``errors`` maps every failure to one of four behaviours.
"""

from magellan_daemon.adapters.alpaca.deferred_import import deferred

# alpaca-py's trading requests import pandas for a request the daemon never sends: imported
# here, before any module of this package, with pandas deferred to its first use
# (``deferred_import``): about 0.2 s of imports and 58 MiB of RSS less.
with deferred("pandas"):
    import alpaca.trading.requests  # noqa: F401
