"""The daemon's read-only status page (``[web]``): an aiohttp server on the daemon's loop
that answers from an in-memory view and a read-only ledger connection used off the loop."""
