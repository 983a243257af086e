"""Alpaca's REST routes (trading and market data) mapped onto the exchange core.

Handlers only parse, call the core and shape the HTTP response; the core raises ``SimError``
for every business rule, and the server's middleware turns it into Alpaca's JSON error.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import orjson
from aiohttp import web

from magellan_sim.errors import SimError
from magellan_sim.exchange.corporate_desk import CORPORATE_LIMIT_DEFAULT, CORPORATE_LIMIT_MAX
from magellan_sim.exchange.exchange import Exchange
from magellan_sim.server.order_params import replace_kwargs, submit_kwargs
from magellan_sim.server.params import (
    data_invalid,
    invalid,
    parse_json_body,
    query_value,
    to_bool,
    to_choice,
    to_date,
    to_datetime,
    to_decimal,
    to_int,
    to_str,
    to_symbols,
)

ACCOUNT_KEY = web.RequestKey("sim_account_key", str)
ORDER_STATUSES = frozenset({"open", "closed", "all"})
DIRECTIONS = frozenset({"asc", "desc"})
SIDES = frozenset({"buy", "sell"})
FEEDS = frozenset({"iex", "sip", "delayed_sip", "otc", "boats", "overnight"})
ORDERS_LIMIT_MAX = 500
BARS_LIMIT_MAX = 10_000
ACTIVITIES_PAGE_MAX = 100


def json_response(payload: Any, status: int = 200) -> web.Response:
    """A JSON response encoded with orjson."""
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")


def account_key(request: web.Request) -> str:
    """The account the request's credentials identify (set by the auth middleware)."""
    return str(request[ACCOUNT_KEY])


class RestRoutes:
    """The ``/v2/...`` and ``/v1/...`` HTTP handlers over one ``Exchange``.

    One public handler per Alpaca route (22 and ``register``): each only parses and maps
    to one desk call, so splitting them would scatter the route table, not concepts.
    """

    def __init__(self, exchange: Exchange) -> None:
        self._exchange = exchange

    def register(self, router: web.UrlDispatcher) -> None:
        """Add every route; the literal-colon route goes before ``/v2/orders/{id}``."""
        add = router.add_route
        add("GET", "/v2/account", self.get_account)
        add("GET", "/v2/clock", self.get_clock)
        add("GET", "/v2/calendar", self.get_calendar)
        add("GET", "/v2/assets/{symbol}", self.get_asset)
        add("GET", "/v2/orders:by_client_order_id", self.get_order_by_client_id)
        add("POST", "/v2/orders", self.submit_order)
        add("GET", "/v2/orders", self.list_orders)
        add("DELETE", "/v2/orders", self.cancel_all_orders)
        add("GET", "/v2/orders/{order_id}", self.get_order)
        add("PATCH", "/v2/orders/{order_id}", self.replace_order)
        add("DELETE", "/v2/orders/{order_id}", self.cancel_order)
        add("GET", "/v2/positions", self.list_positions)
        add("DELETE", "/v2/positions", self.close_all_positions)
        add("GET", "/v2/positions/{symbol}", self.get_position)
        add("DELETE", "/v2/positions/{symbol}", self.close_position)
        add("GET", "/v2/account/activities", self.activities)
        add("GET", "/v2/account/activities/{activity_type}", self.activities)
        add("GET", "/v2/stocks/bars", self.bars)
        add("GET", "/v2/stocks/bars/latest", self.latest_bars)
        add("GET", "/v2/stocks/trades/latest", self.latest_trades)
        add("GET", "/v2/stocks/quotes/latest", self.latest_quotes)
        # after the literal ``/v2/stocks/bars...`` routes: ``{symbol}`` would not match them
        # anyway (their last segment is not "bars"), but literal-first keeps that obvious
        add("GET", "/v2/stocks/{symbol}/bars", self.symbol_bars)
        add("GET", "/v1/corporate-actions", self.corporate_actions)

    # -- account, clock, calendar, assets ----------------------------------------------

    async def get_account(self, request: web.Request) -> web.Response:
        """GET /v2/account."""
        return json_response(self._exchange.accounts.get_account(account_key(request)))

    async def get_clock(self, request: web.Request) -> web.Response:
        """GET /v2/clock."""
        return json_response(self._exchange.data.get_clock())

    async def get_calendar(self, request: web.Request) -> web.Response:
        """GET /v2/calendar?start=YYYY-MM-DD&end=YYYY-MM-DD."""
        start = to_date(query_value(request.query, "start"), "start")
        end = to_date(query_value(request.query, "end"), "end")
        return json_response(self._exchange.data.get_calendar(start, end))

    async def get_asset(self, request: web.Request) -> web.Response:
        """GET /v2/assets/{symbol_or_asset_id}."""
        symbol = to_str(request.match_info["symbol"], "symbol", max_len=64) or ""
        return json_response(self._exchange.data.get_asset(account_key(request), symbol))

    # -- orders --------------------------------------------------------------------------

    async def submit_order(self, request: web.Request) -> web.Response:
        """POST /v2/orders."""
        kwargs = submit_kwargs(parse_json_body(await request.read()))
        return json_response(self._exchange.orders.submit_order(account_key(request), **kwargs))

    async def list_orders(self, request: web.Request) -> web.Response:
        """GET /v2/orders with Alpaca's filters."""
        query = request.query
        limit = to_int(query_value(query, "limit"), "limit", low=1, high=ORDERS_LIMIT_MAX)
        orders = self._exchange.orders.list_orders(
            account_key(request),
            status=to_choice(query_value(query, "status"), "status", ORDER_STATUSES) or "open",
            after=to_datetime(query_value(query, "after"), "after"),
            until=to_datetime(query_value(query, "until"), "until"),
            limit=limit or 50,
            direction=to_choice(query_value(query, "direction"), "direction", DIRECTIONS) or "desc",
            nested=bool(to_bool(query_value(query, "nested"), "nested")),
            symbols=to_symbols(query_value(query, "symbols")),
            side=to_choice(query_value(query, "side"), "side", SIDES),
        )
        return json_response(orders)

    async def get_order(self, request: web.Request) -> web.Response:
        """GET /v2/orders/{order_id}."""
        order_id = _path_id(request, "order_id")
        return json_response(self._exchange.orders.get_order(account_key(request), order_id))

    async def get_order_by_client_id(self, request: web.Request) -> web.Response:
        """GET /v2/orders:by_client_order_id?client_order_id=X."""
        client_id = to_str(query_value(request.query, "client_order_id"), "client_order_id")
        if client_id is None:
            raise invalid("client_order_id is required")
        order = self._exchange.orders.get_order_by_client_id(account_key(request), client_id)
        return json_response(order)

    async def replace_order(self, request: web.Request) -> web.Response:
        """PATCH /v2/orders/{order_id}: the response is the NEW order."""
        order_id = _path_id(request, "order_id")
        kwargs = replace_kwargs(parse_json_body(await request.read()))
        order = self._exchange.orders.replace_order(account_key(request), order_id, **kwargs)
        return json_response(order)

    async def cancel_order(self, request: web.Request) -> web.Response:
        """DELETE /v2/orders/{order_id}: 204 with an empty body."""
        order_id = _path_id(request, "order_id")
        self._exchange.orders.cancel_order(account_key(request), order_id)
        return web.Response(status=204)

    async def cancel_all_orders(self, request: web.Request) -> web.Response:
        """DELETE /v2/orders: 207 with one item per order."""
        return json_response(self._exchange.orders.cancel_all_orders(account_key(request)), 207)

    # -- positions -----------------------------------------------------------------------

    async def list_positions(self, request: web.Request) -> web.Response:
        """GET /v2/positions."""
        return json_response(self._exchange.accounts.list_positions(account_key(request)))

    async def get_position(self, request: web.Request) -> web.Response:
        """GET /v2/positions/{symbol_or_asset_id}."""
        symbol = _path_id(request, "symbol")
        return json_response(self._exchange.accounts.get_position(account_key(request), symbol))

    async def close_position(self, request: web.Request) -> web.Response:
        """DELETE /v2/positions/{symbol_or_asset_id}?qty=|percentage=: the liquidating order."""
        symbol = _path_id(request, "symbol")
        qty = to_decimal(query_value(request.query, "qty"), "qty")
        percentage = to_decimal(query_value(request.query, "percentage"), "percentage")
        if qty is not None and percentage is not None:
            raise invalid("qty and percentage cannot both be given")
        if percentage is not None and percentage > 100:
            raise invalid("percentage must be between 0 and 100")
        order = self._exchange.accounts.close_position(
            account_key(request), symbol, qty=qty, percentage=percentage
        )
        return json_response(order)

    async def close_all_positions(self, request: web.Request) -> web.Response:
        """DELETE /v2/positions?cancel_orders=True: 207 with one item per position."""
        cancel = to_bool(query_value(request.query, "cancel_orders"), "cancel_orders")
        items = self._exchange.accounts.close_all_positions(
            account_key(request), cancel_orders=bool(cancel)
        )
        return json_response(items, 207)

    # -- activities ----------------------------------------------------------------------

    async def activities(self, request: web.Request) -> web.Response:
        """GET /v2/account/activities[/{activity_type}]."""
        query = request.query
        types_text = request.match_info.get("activity_type") or query_value(query, "activity_types")
        types = None
        if types_text is not None:
            types = [part.strip().upper() for part in types_text.split(",") if part.strip()]
        page_size = to_int(
            query_value(query, "page_size"), "page_size", low=1, high=ACTIVITIES_PAGE_MAX
        )
        items = self._exchange.accounts.activities(
            account_key(request),
            activity_types=types,
            after=to_datetime(query_value(query, "after"), "after"),
            until=to_datetime(query_value(query, "until"), "until"),
            direction=to_choice(query_value(query, "direction"), "direction", DIRECTIONS) or "desc",
            page_size=page_size or ACTIVITIES_PAGE_MAX,
            page_token=to_str(query_value(query, "page_token"), "page_token"),
        )
        return json_response(items)

    # -- market data ---------------------------------------------------------------------

    async def bars(self, request: web.Request) -> web.Response:
        """GET /v2/stocks/bars (multi-symbol, paginated)."""
        with _as_data_error():
            symbols = _required_symbols(request.query)
        return json_response(self._bars(request, symbols))

    async def symbol_bars(self, request: web.Request) -> web.Response:
        """GET /v2/stocks/{symbol}/bars: the same bars and paging for one symbol, in the
        old per-symbol shape ``{"bars": [...], "symbol": ..., "next_page_token": ...}``."""
        with _as_data_error():
            symbols = to_symbols(request.match_info["symbol"], "symbol")
        assert symbols is not None  # a path segment is never empty
        if len(symbols) != 1:
            raise data_invalid("one symbol per request on this endpoint")
        payload = self._bars(request, symbols)
        return json_response(
            {
                "bars": payload["bars"].get(symbols[0], []),
                "symbol": symbols[0],
                "next_page_token": payload["next_page_token"],
            }
        )

    def _bars(self, request: web.Request, symbols: list[str]) -> dict[str, Any]:
        query = request.query
        _check_feed(query)
        with _as_data_error():
            timeframe = to_str(query_value(query, "timeframe"), "timeframe", max_len=16)
            if timeframe is None:
                raise invalid("timeframe is required")
            limit = to_int(query_value(query, "limit"), "limit", low=1, high=BARS_LIMIT_MAX)
            sort = to_choice(query_value(query, "sort"), "sort", DIRECTIONS) or "asc"
            start = to_datetime(query_value(query, "start"), "start")
            end = to_datetime(query_value(query, "end"), "end")
            page_token = to_str(query_value(query, "page_token"), "page_token", max_len=1024)
            adjustment = to_str(query_value(query, "adjustment"), "adjustment", max_len=16)
        return self._exchange.data.get_bars(
            symbols=symbols,
            timeframe=timeframe,
            start=start,
            end=end,
            limit=limit or 1000,
            page_token=page_token,
            sort=sort,
            adjustment=adjustment or "raw",
        )

    async def corporate_actions(self, request: web.Request) -> web.Response:
        """GET /v1/corporate-actions (the data API's, as CorporateActionsClient calls it)."""
        query = request.query
        with _as_data_error():
            limit = to_int(query_value(query, "limit"), "limit", low=1, high=CORPORATE_LIMIT_MAX)
            payload = self._exchange.data.corporate_actions(
                symbols=to_symbols(query_value(query, "symbols")),
                types=_comma_list(query_value(query, "types")),
                start=to_date(query_value(query, "start"), "start"),
                end=to_date(query_value(query, "end"), "end"),
                ids=_comma_list(query_value(query, "ids")),
                limit=limit or CORPORATE_LIMIT_DEFAULT,
                sort=to_choice(query_value(query, "sort"), "sort", DIRECTIONS) or "asc",
                page_token=to_str(query_value(query, "page_token"), "page_token", max_len=1024),
            )
        return json_response(payload)

    async def latest_bars(self, request: web.Request) -> web.Response:
        """GET /v2/stocks/bars/latest?symbols=..."""
        return json_response(self._exchange.data.latest_bars(_latest_symbols(request)))

    async def latest_trades(self, request: web.Request) -> web.Response:
        """GET /v2/stocks/trades/latest?symbols=..."""
        return json_response(self._exchange.data.latest_trades(_latest_symbols(request)))

    async def latest_quotes(self, request: web.Request) -> web.Response:
        """GET /v2/stocks/quotes/latest?symbols=..."""
        return json_response(self._exchange.data.latest_quotes(_latest_symbols(request)))


def _path_id(request: web.Request, name: str) -> str:
    value = request.match_info[name]
    if not value or len(value) > 128:
        raise invalid(f"{name} is invalid")
    return value


def _comma_list(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [part.strip() for part in text.split(",") if part.strip()] or None


def _check_feed(query: Any) -> None:
    feed = query_value(query, "feed")
    if feed is not None and feed.lower() not in FEEDS:
        raise data_invalid(f"invalid feed: {feed!r}")


def _required_symbols(query: Any) -> list[str]:
    symbols = to_symbols(query_value(query, "symbols"))
    if symbols is None:
        raise invalid("symbols is required")
    return symbols


def _latest_symbols(request: web.Request) -> list[str]:
    _check_feed(request.query)
    with _as_data_error():
        return _required_symbols(request.query)


@contextlib.contextmanager
def _as_data_error() -> Iterator[None]:
    """Re-raise parameter errors in the data API's shape (400, message only, no code)."""
    try:
        yield
    except SimError as exc:
        if exc.code is None:
            raise
        raise data_invalid(exc.message) from exc
