"""The exchange's market desk: clock, calendar, assets and market data (bars, trades,
quotes, corporate actions)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from magellan_core.clock import Clock
from magellan_sim.errors import data_error, invalid, not_found
from magellan_sim.exchange import data_api
from magellan_sim.exchange.assets import Assets
from magellan_sim.exchange.book import AccountBook
from magellan_sim.exchange.corporate_desk import CorporateDesk, corporate_actions_page
from magellan_sim.exchange.wire import asset_dict, stream_bar_dict, ts_new_york
from magellan_sim.market.calendar import SessionCalendar, calendar_days, new_york_date
from magellan_sim.market.corporate import ADJUSTMENTS, CorporateBook
from magellan_sim.market.market import MarketData, SimBar
from magellan_sim.market.tape import Tape


class MarketDesk:
    """Clock, calendar, assets, bars, trades, quotes and corporate actions, as the REST API
    asks for them."""

    def __init__(
        self,
        clock: Clock,
        calendar: SessionCalendar,
        market: MarketData,
        *,
        advance: Callable[[], None],
        accounts: AccountBook,
        assets: Assets,
        tape: Tape,
        corporate: CorporateBook,
        corporate_desk: CorporateDesk,
    ) -> None:
        self._clock = clock
        self._calendar = calendar
        self._market = market
        self._advance = advance
        self._accounts = accounts
        self._assets = assets
        self._tape = tape
        self._corporate = corporate
        self._corporate_desk = corporate_desk

    def get_clock(self) -> dict[str, Any]:
        """Market clock in New York time."""
        self._advance()
        now = self._clock.now()
        return {
            "timestamp": ts_new_york(now),
            "is_open": self._calendar.is_open(now),
            "next_open": ts_new_york(self._calendar.next_open(now)),
            "next_close": ts_new_york(self._calendar.next_close(now)),
        }

    def get_calendar(self, start: date | None, end: date | None) -> list[dict[str, Any]]:
        """Sessions from ``start`` to ``end`` inclusive (whole calendar by default)."""
        self._advance()
        first = start or self._calendar.first_date
        last = end or self._calendar.last_date
        if last < first:
            raise invalid("end must not be before start")
        return calendar_days(self._calendar, first, last)

    def get_asset(self, key: str, symbol_or_id: str) -> dict[str, Any]:
        """The asset for a symbol or asset id (404 if the market does not have it)."""
        self._advance()
        self._accounts.open(key)
        symbol = self._assets.symbol(symbol_or_id)
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
        self._advance()
        if adjustment not in ADJUSTMENTS:
            raise data_error(f"invalid adjustment: {adjustment!r}", status=400)
        return data_api.get_bars(
            self._market,
            self._clock.now(),
            symbols=symbols,
            timeframe=timeframe,
            start=start,
            end=end,
            limit=limit,
            page_token=page_token,
            sort=sort,
            adjust=self._corporate_desk.bar_adjustment(adjustment, self._clock.now()),
        )

    def latest_bars(self, symbols: list[str]) -> dict[str, Any]:
        """``{"bars": {sym: bar}}`` of the latest completed bars."""
        self._advance()
        return data_api.latest_bars(self._market.latest_bar, self._clock.now(), symbols)

    def latest_trades(self, symbols: list[str]) -> dict[str, Any]:
        """``{"trades": {sym: trade}}`` from the latest completed minutes of the tape."""
        self._advance()
        return data_api.latest_trades(self._tape.latest_bar, self._clock.now(), symbols)

    def latest_quotes(self, symbols: list[str]) -> dict[str, Any]:
        """``{"quotes": {sym: quote}}`` around the latest completed minutes of the tape."""
        self._advance()
        return data_api.latest_quotes(self._tape.latest_bar, self._clock.now(), symbols)

    def stream_bar(self, bar: SimBar) -> dict[str, Any]:
        """The data-stream map of a minute bar (``t`` left as a datetime)."""
        return stream_bar_dict(bar)

    def corporate_actions(
        self,
        *,
        symbols: list[str] | None,
        types: list[str] | None,
        start: date | None,
        end: date | None,
        ids: list[str] | None,
        limit: int,
        sort: str,
        page_token: str | None,
    ) -> dict[str, Any]:
        """``GET /v1/corporate-actions``: the file's actions by ex-date (which is also
        their process date), ``start``..``end`` inclusive, both today by default."""
        self._advance()
        return corporate_actions_page(
            self._corporate.actions,
            new_york_date(self._clock.now()),
            symbols=symbols,
            types=types,
            start=start,
            end=end,
            ids=ids,
            limit=limit,
            sort=sort,
            page_token=page_token,
        )
