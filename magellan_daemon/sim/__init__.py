"""Alpaca-compatible paper-trading simulator.

The exchange core (``exchange``, ``market``, ``calendar``, ``synthetic``, ``orders``,
``account``, ``wire``) is plain synchronous code driven by ``magellan_daemon.clock``; the
aiohttp server exposes it on Alpaca's wire protocol.
"""
