"""Market-data REST answers (bars with pagination, latest bar/trade/quote), no look-ahead."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from magellan_core.timeframes import BAR_LENGTH, INTRADAY, parse_timeframe
from magellan_sim.errors import data_error
from magellan_sim.exchange.wire import bar_dict, ts
from magellan_sim.market.calendar import new_york_date, new_york_midnight
from magellan_sim.market.market import MarketData, SimBar

MAX_LIMIT = 10_000
DAILY_LAST_TRADE = timedelta(hours=6)  # where a daily bar's last trade is stamped from its start
# (symbol, now) -> the latest completed bar: the real bars for the bar endpoints, the minute
# tape (real or generated minutes) for the last trade and quote
LatestBar = Callable[[str, datetime], SimBar | None]


def get_bars(
    market: MarketData,
    now: datetime,
    *,
    symbols: list[str],
    timeframe: str,
    start: datetime | None,
    end: datetime | None,
    limit: int,
    page_token: str | None,
    sort: str,
    adjust: Callable[[SimBar], SimBar] | None = None,
) -> dict[str, Any]:
    """Bars ordered by symbol then time; ``limit`` spans all symbols; opaque page token;
    ``adjust`` re-scales each bar served (corporate actions), None for raw."""
    canonical = parse_timeframe(timeframe)
    if canonical is None:
        raise data_error(f"invalid timeframe: {timeframe!r} (supported: 1Min, 1Hour, 1Day)")
    if not symbols:
        raise data_error("symbols is required", status=400)
    if not 1 <= limit <= MAX_LIMIT:
        raise data_error(f"invalid limit: {limit} (limit must be between 1 and {MAX_LIMIT})")
    if sort not in ("asc", "desc"):
        raise data_error(f"invalid sort: {sort!r} (sort must be asc or desc)")
    start = start or new_york_midnight(new_york_date(now))
    if end is not None and end < start:
        raise data_error("end should not be before start")
    resume = _decode_token(page_token) if page_token else None
    out: dict[str, list[dict[str, Any]]] = {}
    taken = 0
    for symbol in sorted(set(symbols)):
        if resume and symbol < resume[0]:
            continue
        series = market.series(symbol, canonical)
        if series is None:
            continue
        indices = series.index_range(start, end, now)
        ordered = indices if sort == "asc" else indices[::-1]
        for i in ordered:
            t = int(series.t[i])
            if (
                resume
                and symbol == resume[0]
                and (t < resume[1] if sort == "asc" else t > resume[1])
            ):
                continue
            if taken == limit:
                return {"bars": out, "next_page_token": _encode_token(symbol, t)}
            bar = series.bar(i)
            out.setdefault(symbol, []).append(bar_dict(adjust(bar) if adjust else bar))
            taken += 1
    return {"bars": out, "next_page_token": None}


def latest_bars(latest: LatestBar, now: datetime, symbols: list[str]) -> dict[str, Any]:
    """Latest completed bar per symbol (symbols without one are absent)."""
    found = _latest(latest, now, symbols)
    return {"bars": {symbol: bar_dict(bar) for symbol, bar in found.items()}}


def latest_trades(latest: LatestBar, now: datetime, symbols: list[str]) -> dict[str, Any]:
    """A last trade per symbol derived from the latest completed bar's close."""
    trades = {}
    for symbol, bar in _latest(latest, now, symbols).items():
        trades[symbol] = {
            "t": ts(_last_instant(bar)),
            "x": "V",
            "p": bar.close,
            "s": 100,
            "c": ["@"],
            "i": int(bar.t.timestamp()),
            "z": "C",
        }
    return {"trades": trades}


def latest_quotes(latest: LatestBar, now: datetime, symbols: list[str]) -> dict[str, Any]:
    """A quote per symbol: one tick either side of the latest completed bar's close, with a
    size in shares that grows with that bar's volume (a thin bar shows a thin book)."""
    quotes = {}
    for symbol, bar in _latest(latest, now, symbols).items():
        tick = 0.01 if bar.close >= 1 else 0.0001
        size = _book_size(bar.volume)
        quotes[symbol] = {
            "t": ts(_last_instant(bar)),
            "ax": "V",
            "ap": round(bar.close + tick, 4),
            "as": size,
            "bx": "V",
            "bp": round(max(bar.close - tick, tick), 4),
            "bs": size,
            "c": ["R"],
            "z": "C",
        }
    return {"quotes": quotes}


def _book_size(volume: float) -> int:
    """Shares shown at the touch: 5% of the minute's volume in round lots, 100 to 10,000."""
    return int(min(10_000, max(100, round(volume * 0.05, -2))))


def _latest(latest: LatestBar, now: datetime, symbols: list[str]) -> dict[str, SimBar]:
    if not symbols:
        raise data_error("symbols is required", status=400)
    found = {}
    for symbol in sorted(set(symbols)):
        bar = latest(symbol, now)
        if bar is not None:
            found[symbol] = bar
    return found


def _last_instant(bar: SimBar) -> datetime:
    # The last trade of a bar happened before it completed: stamp it a second before its end
    # (a daily bar, stamped 00:00 New York, at 06:00 UTC less a second).
    length = BAR_LENGTH[bar.timeframe] if bar.timeframe in INTRADAY else DAILY_LAST_TRADE
    return bar.t + length - timedelta(seconds=1)


def _encode_token(symbol: str, t: int) -> str:
    return base64.urlsafe_b64encode(f"{symbol}|{t}".encode()).decode()


def _decode_token(token: str) -> tuple[str, int]:
    try:
        symbol, stamp = base64.urlsafe_b64decode(token.encode()).decode().split("|")
        return symbol, int(stamp)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise data_error("invalid page_token", status=400) from exc
