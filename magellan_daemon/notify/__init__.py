"""Notifications through apprise (``[notify]``): what the daemon logs that an operator must
hear about, queued and sent by one supervised worker, rate-limited, never awaited by trading
code."""
