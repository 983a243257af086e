"""Alpaca's wire protocol over the exchange: REST routes, the trade-updates and market
data websockets, credentials and the rate limit, on one loopback aiohttp port."""
