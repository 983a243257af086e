"""The exchange's market desk: clock, calendar, assets and market data."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from magellan_sim.errors import data_error, invalid, not_found
from magellan_sim.exchange import data_api
from magellan_sim.exchange.corporate_desk import CorporateDesk
from magellan_sim.exchange.wire import asset_dict, stream_bar_dict, ts_new_york
from magellan_sim.market.calendar import calendar_days
from magellan_sim.market.corporate import ADJUSTMENTS
from magellan_sim.market.market import SimBar


class MarketDesk(CorporateDesk):
    """Clock, calendar, assets and bars, as the REST API asks for them."""

    def get_clock(self) -> dict[str, Any]:
        """Market clock in New York time."""
        self.advance()
        now = self.clock.now()
        return {
            "timestamp": ts_new_york(now),
            "is_open": self.calendar.is_open(now),
            "next_open": ts_new_york(self.calendar.next_open(now)),
            "next_close": ts_new_york(self.calendar.next_close(now)),
        }

    def get_calendar(self, start: date | None, end: date | None) -> list[dict[str, Any]]:
        """Sessions from ``start`` to ``end`` inclusive (whole calendar by default)."""
        self.advance()
        first = start or self.calendar.first_date
        last = end or self.calendar.last_date
        if last < first:
            raise invalid("end must not be before start")
        return calendar_days(self.calendar, first, last)

    def _symbol(self, symbol_or_id: str) -> str | None:
        if self.market.has_symbol(symbol_or_id):
            return symbol_or_id
        return self._symbol_by_asset_id.get(symbol_or_id.lower())

    def get_asset(self, key: str, symbol_or_id: str) -> dict[str, Any]:
        """The asset for a symbol or asset id (404 if the market does not have it)."""
        self.advance()
        self._account(key)
        symbol = self._symbol(symbol_or_id)
        if symbol is None:
            raise not_found(f"asset not found for {symbol_or_id}")
        return asset_dict(symbol)

    def get_bars(
        self,
        *,
        symbols: list[str],
        timeframe: str,
        start: datetime | None,
        end: datetime | None,
        limit: int = 1000,
        page_token: str | None = None,
        sort: str = "asc",
        adjustment: str = "raw",
    ) -> dict[str, Any]:
        """Historical bars (completed only), ``{"bars": {...}, "next_page_token": ...}``;
        ``adjustment`` raw (Alpaca's default), split, dividend or all, as known now."""
        self.advance()
        if adjustment not in ADJUSTMENTS:
            raise data_error(f"invalid adjustment: {adjustment!r}", status=400)
        return data_api.get_bars(
            self.market,
            self.clock.now(),
            symbols=symbols,
            timeframe=timeframe,
            start=start,
            end=end,
            limit=limit,
            page_token=page_token,
            sort=sort,
            adjust=self._bar_adjustment(adjustment, self.clock.now()),
        )

    def latest_bars(self, symbols: list[str]) -> dict[str, Any]:
        """``{"bars": {sym: bar}}`` of the latest completed bars."""
        self.advance()
        return data_api.latest_bars(self.market.latest_bar, self.clock.now(), symbols)

    def latest_trades(self, symbols: list[str]) -> dict[str, Any]:
        """``{"trades": {sym: trade}}`` from the latest completed minutes of the tape."""
        self.advance()
        return data_api.latest_trades(self.tape.latest_bar, self.clock.now(), symbols)

    def latest_quotes(self, symbols: list[str]) -> dict[str, Any]:
        """``{"quotes": {sym: quote}}`` around the latest completed minutes of the tape."""
        self.advance()
        return data_api.latest_quotes(self.tape.latest_bar, self.clock.now(), symbols)

    def stream_bar(self, bar: SimBar) -> dict[str, Any]:
        """The data-stream map of a minute bar (``t`` left as a datetime)."""
        return stream_bar_dict(bar)
