"""Bringing the ledger back to the broker's truth: the pure diff (``reconcile``), the
recovery around it at startup and after a reconnect, corporate actions at each pre-open,
and what a strategy holds by the ledger (``holdings``). Imports the domain, the ledger and
``execution.events``; never the node.
"""
