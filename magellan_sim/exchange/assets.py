"""The tradable assets: the market's symbols, found by symbol or by asset id."""

from __future__ import annotations

from magellan_sim.exchange.wire import asset_id
from magellan_sim.market.market import MarketData


class Assets:
    """Symbol or asset id -> symbol, for the symbols the market has bars of."""

    def __init__(self, market: MarketData) -> None:
        self._market = market
        self._symbol_by_asset_id = {asset_id(s): s for s in market.symbols()}

    def symbol(self, symbol_or_id: str) -> str | None:
        """The symbol named by ``symbol_or_id`` (a symbol or an asset id), else None."""
        if self._market.has_symbol(symbol_or_id):
            return symbol_or_id
        return self._symbol_by_asset_id.get(symbol_or_id.lower())
