"""The Alpaca adapter: the only package that imports ``alpaca``.

``rest.AlpacaBroker`` wraps the blocking REST clients (thread pool, HTTP timeout, shared
throttle, no SDK retries); ``stream`` runs the trade-updates and market-data websockets
inside our event loop; ``convert`` turns alpaca-py's loose types into ``domain`` values at
this edge and nowhere else; ``errors`` maps every failure to one of four behaviours.
"""
