"""Alpaca's market-data REST reads (historical bars, the latest quote, corporate actions),
spoken by us over one ``requests`` session.

Why not alpaca-py's ``StockHistoricalDataClient`` and ``CorporateActionsClient``: importing
``alpaca.data`` builds about a hundred pydantic models and imports pandas for their ``.df``
(0.48-0.55 s of imports by ``python -X importtime``, pandas 0.18-0.21 s of it, and pandas'
58 MiB of RSS), for three GET endpoints whose JSON we turn
into our own values anyway. The requests are the ones alpaca-py sends (alpaca-wire §5.1-5.2:
the multi-symbol paths, ``limit`` 10,000 for bars and 1,000 for corporate actions, the pages
followed by ``page_token``); the simulator's tests check those endpoints against alpaca-py's
own clients. A failure raises alpaca-py's ``APIError`` (the reply's text and the HTTP error,
as its clients raise it), so ``errors.classify`` treats both alike.

Blocking, like alpaca-py: ``rest.AlpacaBroker`` calls it in its thread pool, one instance
per thread (a ``requests`` session is not shared across threads).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import requests
from alpaca.common.exceptions import APIError

DEFAULT_URL = "https://data.alpaca.markets"
BARS_PAGE = 10_000  # alpaca-py's page for bars (the API's maximum)
ACTIONS_PAGE = 1_000  # alpaca-py's page for corporate actions


class MarketDataReads:
    """The market-data API of one key: GETs with the key's headers and a timeout."""

    def __init__(self, key: str, secret: str, url: str | None, timeout_seconds: float) -> None:
        self._url = (url or DEFAULT_URL).rstrip("/")
        self._timeout = timeout_seconds
        self._session = requests.Session()
        self._session.headers.update({"APCA-API-KEY-ID": key, "APCA-API-SECRET-KEY": secret})

    def __repr__(self) -> str:
        return f"MarketDataReads(url={self._url!r})"

    def bars(
        self,
        symbols: Sequence[str],
        timeframe: str,
        start: datetime,
        end: datetime,
        *,
        feed: str,
        adjustment: str,
    ) -> dict[str, list[dict[str, Any]]]:
        """GET /v2/stocks/bars, every page: ``{symbol: [raw bar, ...]}`` oldest first (a
        symbol without bars is absent)."""
        params = {
            "symbols": ",".join(symbols),
            "timeframe": timeframe,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "adjustment": adjustment,
            "feed": feed,
            "limit": BARS_PAGE,
        }
        return self._pages("/v2/stocks/bars", params, "bars")

    def latest_quotes(self, symbols: Sequence[str], *, feed: str) -> dict[str, dict[str, Any]]:
        """GET /v2/stocks/quotes/latest: ``{symbol: raw quote}`` (a symbol the feed has no
        quote for is absent)."""
        reply = self._get("/v2/stocks/quotes/latest", {"symbols": ",".join(symbols), "feed": feed})
        quotes = _entries(reply, "quotes")
        if not isinstance(quotes, dict):
            raise ValueError(f"latest quotes: a {type(quotes).__name__}, not an object")
        return quotes

    def corporate_actions(
        self, symbols: Sequence[str], types: Sequence[str], start: date, end: date
    ) -> dict[str, list[dict[str, Any]]]:
        """GET /v1/corporate-actions, every page: ``{"forward_splits": [...], ...}``."""
        params = {
            "symbols": ",".join(symbols),
            "types": ",".join(types),
            "start": start.isoformat(),
            "end": end.isoformat(),
            "limit": ACTIONS_PAGE,
        }
        return self._pages("/v1/corporate-actions", params, "corporate_actions")

    def _pages(self, path: str, params: dict[str, Any], key: str) -> dict[str, list[Any]]:
        """Every page of a paged reply, its lists merged by name (as alpaca-py does)."""
        merged: dict[str, list[Any]] = {}
        token: str | None = None
        while True:
            reply = self._get(path, params if token is None else {**params, "page_token": token})
            entries = _entries(reply, key)
            if not isinstance(entries, dict):
                raise ValueError(f"{path}: {key!r} is a {type(entries).__name__}, not an object")
            for name, rows in entries.items():
                if not isinstance(rows, list):
                    raise ValueError(f"{path}: {key}[{name!r}] is a {type(rows).__name__}")
                merged.setdefault(name, []).extend(rows)
            token = reply.get("next_page_token")
            if not token:
                return merged

    def _get(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        response = self._session.get(self._url + path, params=params, timeout=self._timeout)
        try:
            response.raise_for_status()
        except requests.HTTPError as http_error:
            raise APIError(response.text, http_error) from None
        reply = response.json()
        if not isinstance(reply, dict):
            raise ValueError(f"{path}: the reply is a {type(reply).__name__}, not an object")
        return reply


def _entries(reply: dict[str, Any], key: str) -> Any:
    """The reply's data under ``key``; ``{}`` when Alpaca sends null for "nothing"."""
    if key not in reply:
        raise ValueError(f"the reply has no {key!r}: {sorted(reply)[:5]}")
    return reply[key] or {}
