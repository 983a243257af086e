"""The REST side of one Alpaca account, made safe to call from the event loop.

alpaca-py's clients are blocking (``requests``), set no HTTP timeout, and re-POST by
themselves on 429/504 with a blocking ``time.sleep(3)``. So, per account:

- calls run in a small dedicated thread pool (never the loop's default executor), each
  thread with its own ``TradingClient`` and ``MarketDataReads`` (requests sessions are not
  shared across threads);
- every request gets a timeout by wrapping the client's session (alpaca-py has no option);
- the SDK's own retries are turned off (``_retry = 0``): a retry of a submit must first look
  the order up by ``client_order_id``, which only the router can decide;
- one ``asyncio-throttle`` budget (200 requests/minute by default) is acquired before each
  call, shared by everything that talks to this key.

Market data (historical bars, the latest quote, corporate actions) is read by our own
``MarketDataReads``, not alpaca-py's data clients: importing ``alpaca.data`` costs about 0.5
s of imports and, with pandas, 58 MiB of RSS (``market_data_reads``), and its ``BarSet``
built and validated a pydantic model per bar, which at startup (tens of thousands of warm-up
bars) cost about as much as the request itself; we build our own ``Bar`` from each dict
anyway.

Failures come out as the ``broker.errors`` taxonomy. Keys live only inside the clients; this
object's ``repr`` shows the account name and URL, never a key.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from datetime import time as dtime
from decimal import Decimal
from typing import Any, TypeVar

from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, QueryOrderStatus, TimeInForce
from alpaca.trading.requests import (
    GetCalendarRequest,
    GetOrdersRequest,
    MarketOrderRequest,
    ReplaceOrderRequest,
    StopOrderRequest,
)
from asyncio_throttle import Throttler

from magellan_core.corporate_actions import ACTION_TYPES, CorporateAction
from magellan_daemon.adapters.alpaca.convert import (
    bar_time,
    dec,
    fill_from_activity,
    order_from_model,
    position_from_model,
)
from magellan_daemon.adapters.alpaca.corporate import actions_from_set, activity_from_json
from magellan_daemon.adapters.alpaca.errors import classify
from magellan_daemon.adapters.alpaca.market_data_reads import MarketDataReads
from magellan_daemon.adapters.bar_check import bar_problem
from magellan_daemon.domain import (
    AccountActivity,
    AccountInfo,
    BrokerFill,
    BrokerOrder,
    BrokerPosition,
    MarketClock,
    Quote,
)
from magellan_daemon.errors import BrokerError
from magellan_daemon.timefmt import NEW_YORK
from strategies.api.model import Bar, Timeframe
from strategies.api.session import Session

log = logging.getLogger(__name__)
T = TypeVar("T")
ADJUSTMENTS = ("split", "all", "raw")  # the ``adjustment`` values Alpaca's bars accept here


@dataclass
class RestStats:
    """Counters the metrics and the health line read."""

    requests: int = 0
    errors: int = 0
    throttle_wait_seconds: float = 0.0


class AlpacaBroker:
    """One Alpaca account's REST API, async, throttled, with timeouts and no SDK retries.

    Over 15 public methods because it is one method per Alpaca endpoint the daemon uses: the
    broker port (``execution.ports.ReconcilingBroker``) plus the market-data reads."""

    def __init__(
        self,
        *,
        account: str,
        key: str,
        secret: str,
        paper: bool,
        trading_url: str | None = None,
        data_url: str | None = None,
        feed: str = "iex",
        adjustment: str = "split",
        timeout_seconds: float = 10.0,
        threads: int = 4,
        requests_per_minute: int = 200,
    ) -> None:
        self.account = account
        self.url = trading_url or ("paper" if paper else "live")
        self.feed = "sip" if feed == "sip" else "iex"
        # Every historical bar is asked for adjusted (``[data] adjustment``): Alpaca's
        # default is raw, on which a split looks like a crash to the indicators.
        if adjustment not in ADJUSTMENTS:
            raise ValueError(f"adjustment must be one of {ADJUSTMENTS}, not {adjustment!r}")
        self.adjustment = adjustment
        self.stats = RestStats()
        self._timeout = timeout_seconds
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=f"rest-{account}")
        self._throttle = Throttler(rate_limit=requests_per_minute, period=60.0)

        def trading() -> TradingClient:
            client = TradingClient(key, secret, paper=paper, url_override=trading_url)
            client._retry = 0  # the router decides about retries (see module docstring)
            session = client._session
            session.request = functools.partial(session.request, timeout=self._timeout)
            return client

        def data() -> MarketDataReads:
            return MarketDataReads(key, secret, data_url, self._timeout)

        self._makers: dict[str, Callable[[], Any]] = {"trading": trading, "data": data}

    def __repr__(self) -> str:
        return f"AlpacaBroker(account={self.account!r}, url={self.url!r})"

    def close(self) -> None:
        """Stop the thread pool without waiting: queued calls are dropped, a call in flight
        ends within its HTTP timeout (so shutting down never hangs on a silent broker)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- plumbing ------------------------------------------------------------------------

    def _client(self, kind: str) -> Any:
        client = getattr(self._local, kind, None)
        if client is None:
            client = self._makers[kind]()
            setattr(self._local, kind, client)
        return client

    async def _call(self, kind: str, fn: Callable[[Any], T]) -> T:
        started = time.monotonic()
        async with self._throttle:
            self.stats.throttle_wait_seconds += time.monotonic() - started
            self.stats.requests += 1
            loop = asyncio.get_running_loop()
            try:
                return await loop.run_in_executor(self._pool, lambda: fn(self._client(kind)))
            except Exception as exc:  # every failure leaves here classified
                self.stats.errors += 1
                raise classify(exc) from None

    # -- orders --------------------------------------------------------------------------

    async def submit_order(
        self,
        *,
        client_order_id: str,
        symbol: str,
        qty: int,
        side: str,
        order_type: str,
        time_in_force: str,
        stop_price: Decimal | None = None,
    ) -> BrokerOrder:
        """POST /v2/orders. Raises the taxonomy; a retryable error means "unknown"."""
        common = {
            "symbol": symbol,
            "qty": qty,
            "side": OrderSide(side),
            "time_in_force": TimeInForce(time_in_force),
            "client_order_id": client_order_id,
        }
        if order_type == "stop":
            request: Any = StopOrderRequest(**common, stop_price=float(stop_price or 0))
        else:
            request = MarketOrderRequest(**common)
        return await self._call("trading", lambda c: order_from_model(c.submit_order(request)))

    async def order_by_client_id(self, client_order_id: str) -> BrokerOrder:
        """GET /v2/orders:by_client_order_id (BrokerNotFound when absent)."""
        return await self._call(
            "trading", lambda c: order_from_model(c.get_order_by_client_id(client_order_id))
        )

    async def replace_order(
        self,
        broker_order_id: str,
        *,
        qty: int,
        stop_price: Decimal | None,
        client_order_id: str,
    ) -> BrokerOrder:
        """PATCH /v2/orders/{id}: the new order (the old one becomes ``replaced``)."""
        request = ReplaceOrderRequest(
            qty=qty,
            stop_price=None if stop_price is None else float(stop_price),
            client_order_id=client_order_id,
        )
        return await self._call(
            "trading",
            lambda c: order_from_model(c.replace_order_by_id(broker_order_id, request)),
        )

    async def cancel_order(self, broker_order_id: str) -> None:
        """DELETE /v2/orders/{id} (the ``canceled`` event follows on the stream)."""
        await self._call("trading", lambda c: c.cancel_order_by_id(broker_order_id))

    async def orders_since(self, after: datetime) -> list[BrokerOrder]:
        """Every order (any status) submitted after ``after``, oldest first, all pages."""
        found: dict[str, BrokerOrder] = {}
        cursor = after
        while True:
            request = GetOrdersRequest(
                status=QueryOrderStatus.ALL, after=cursor, limit=500, direction="asc"
            )
            page = await self._call(
                "trading", lambda c, r=request: [order_from_model(o) for o in c.get_orders(r)]
            )
            for order in page:
                found[order.broker_order_id] = order
            if len(page) < 500:
                return sorted(found.values(), key=lambda o: o.submitted_at)
            cursor = page[-1].submitted_at

    async def open_orders(self) -> list[BrokerOrder]:
        """GET /v2/orders?status=open (up to 500, Alpaca's page maximum)."""
        request = GetOrdersRequest(status=QueryOrderStatus.OPEN, limit=500)
        return await self._call(
            "trading", lambda c: [order_from_model(o) for o in c.get_orders(request)]
        )

    async def positions(self) -> list[BrokerPosition]:
        """GET /v2/positions."""
        return await self._call(
            "trading", lambda c: [position_from_model(p) for p in c.get_all_positions()]
        )

    async def fill_activities(self, after: datetime) -> list[BrokerFill]:
        """GET /v2/account/activities/FILL after ``after``, oldest first, all pages."""
        fills: list[BrokerFill] = []
        token: str | None = None
        while True:
            params: dict[str, Any] = {
                "after": after.isoformat(),
                "direction": "asc",
                "page_size": 100,
            }
            if token:
                params["page_token"] = token
            page = await self._call("trading", lambda c, p=params: _fill_page(c, p))
            fills.extend(page)
            if len(page) < 100:
                return fills
            token = page[-1].activity_id

    # -- account, clock, calendar --------------------------------------------------------

    async def account_info(self) -> AccountInfo:
        """GET /v2/account."""

        def read(c: TradingClient) -> AccountInfo:
            a = c.get_account()
            return AccountInfo(
                equity=dec(a.equity) or Decimal(0),
                buying_power=dec(a.buying_power) or Decimal(0),
                cash=dec(a.cash) or Decimal(0),
            )

        return await self._call("trading", read)

    async def market_clock(self) -> MarketClock:
        """GET /v2/clock."""

        def read(c: TradingClient) -> MarketClock:
            k = c.get_clock()
            return MarketClock(
                timestamp=k.timestamp.astimezone(UTC),
                is_open=bool(k.is_open),
                next_open=k.next_open.astimezone(UTC),
                next_close=k.next_close.astimezone(UTC),
            )

        return await self._call("trading", read)

    async def sessions(self, start: date, end: date) -> list[Session]:
        """GET /v2/calendar: the sessions from ``start`` to ``end`` with their real closes."""

        def read(c: TradingClient) -> list[Session]:
            days = c.get_calendar(GetCalendarRequest(start=start, end=end))
            return [
                Session(
                    date=d.date,
                    open=_new_york(d.date, d.open.time()),
                    close=_new_york(d.date, d.close.time()),
                )
                for d in days
            ]

        return await self._call("trading", read)

    # -- market data ---------------------------------------------------------------------

    async def bars(
        self, symbols: Sequence[str], timeframe: Timeframe, start: datetime, end: datetime
    ) -> dict[str, list[Bar]]:
        """Historical bars per symbol (all pages), oldest first."""

        def read(c: MarketDataReads) -> dict[str, list[Bar]]:
            # Raw: {symbol: [{"t", "o", "h", "l", "c", "v", ...}]}; a malformed entry raises
            # here, inside the call, so it fails as a classified broker error.
            rows = c.bars(
                symbols, timeframe, start, end, feed=self.feed, adjustment=self.adjustment
            )
            return {
                symbol: _real_bars([_bar(symbol, timeframe, r) for r in raw if r is not None])
                for symbol, raw in rows.items()
            }

        return await self._call("data", read)

    async def corporate_actions(
        self, symbols: Sequence[str], start: date, end: date
    ) -> list[CorporateAction]:
        """GET /v1/corporate-actions: the splits and cash dividends of ``symbols`` with an
        ex-date from ``start`` to ``end`` (inclusive), oldest first."""

        def read(c: MarketDataReads) -> list[CorporateAction]:
            return actions_from_set(c.corporate_actions(symbols, ACTION_TYPES, start, end))

        return await self._call("data", read)

    async def activities(self, activity_type: str, after: datetime) -> list[AccountActivity]:
        """GET /v2/account/activities/{type} (SPLIT, CIL, DIV) after ``after``, oldest first
        (one page of 100: a morning's corporate actions of one account fit)."""
        params = {"after": after.isoformat(), "direction": "asc", "page_size": 100}

        def read(c: TradingClient) -> list[AccountActivity]:
            page = c.get(f"/account/activities/{activity_type}", params) or []
            if not isinstance(page, list):
                raise ValueError(f"{activity_type} activities: a {type(page).__name__}")
            return [activity_from_json(a) for a in page]

        return await self._call("trading", read)

    async def latest_quote(self, symbol: str) -> Quote | None:
        """The latest quote, or None when the feed has none."""

        def read(c: MarketDataReads) -> Quote | None:
            q = c.latest_quotes([symbol], feed=self.feed).get(symbol)
            if q is None:
                return None
            return Quote(
                bid=float(q["bp"]),
                ask=float(q["ap"]),
                bid_size=float(q["bs"]),
                ask_size=float(q["as"]),
            )

        try:
            return await self._call("data", read)
        except BrokerError as exc:
            log.warning("latest quote for %s unavailable: %s", symbol, exc)
            return None


def _new_york(day: date, at: dtime) -> datetime:
    return datetime.combine(day, at, tzinfo=NEW_YORK).astimezone(UTC)


def _fill_page(client: TradingClient, params: dict[str, Any]) -> list[BrokerFill]:
    """One page of FILL activities, converted inside the call so a malformed one fails as
    a classified broker error (the reconciliation retries), never as a KeyError."""
    page = client.get("/account/activities/FILL", params) or []
    if not isinstance(page, list):
        raise ValueError(f"FILL activities: a {type(page).__name__}, not a list")
    return [fill_from_activity(a) for a in page]


def _bar(symbol: str, timeframe: Timeframe, raw: dict[str, Any]) -> Bar:
    """One raw historical bar (Alpaca's short keys) as our ``Bar``."""
    return Bar(
        symbol=symbol,
        timeframe=timeframe,
        t=bar_time(raw["t"]),
        open=float(raw["o"]),
        high=float(raw["h"]),
        low=float(raw["l"]),
        close=float(raw["c"]),
        volume=float(raw["v"]),
    )


def _real_bars(bars: list[Bar]) -> list[Bar]:
    """The bars that can be real; each one dropped is named in a warning."""
    kept = []
    for bar in bars:
        problem = bar_problem(bar)
        if problem is None:
            kept.append(bar)
        else:
            log.warning(
                "REST bar %s %s at %s dropped: %s", bar.symbol, bar.timeframe, bar.t, problem
            )
    return kept
