"""What the daemon tells the outside: the logging setup (text, JSON lines, journald),
Prometheus metrics and ``/healthz``, and sd_notify. Imports nothing of the trading layers."""
