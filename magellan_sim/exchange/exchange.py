"""The exchange: a paper broker with one account per API key, orders matched against the
market's bars, trade updates for every change.

Its parts, each one concept: ``exchange_core`` (state, time, matching, trade updates),
``order_desk`` (orders), ``account_desk`` (accounts, positions, activities) and
``market_desk`` (clock, calendar, assets, bars).
"""

from __future__ import annotations

from magellan_sim.exchange.account_desk import AccountDesk
from magellan_sim.exchange.exchange_core import Listener
from magellan_sim.exchange.market_desk import MarketDesk

__all__ = ["Exchange", "Listener"]


class Exchange(AccountDesk, MarketDesk):
    """A paper broker: one account per API key, orders matched against the market's bars."""
