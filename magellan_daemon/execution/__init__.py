"""The order path: everything between a strategy's intent and the broker's word on it.

``router`` (a package: its lanes and the entry, exit, stop and flatten decisions),
``entry_gate`` (whether an entry may go out, pure), ``order_path`` (the only code that calls
the broker for orders), ``order_watch`` (waiting for an order's outcome), ``events`` (the one
door for broker news into the ledger and the strategies), ``position_guard`` (no position
left unprotected), ``retrying``, ``ports`` (what the runtime calls on the router). Imports
the domain, the ledger and the broker port; never a concrete adapter, the runtime or the
node.
"""
