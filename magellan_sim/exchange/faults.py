"""Fault injection settings, one mutable instance per Exchange (``exchange.faults``).

Every fault is off by default. Rates are fractions 0-1 decided by random draws from the
fault ``seed`` (the same seed gives the same sequence of decisions); counters ("the next N")
are consumed one per occurrence; ``drop_*`` switches act once and reset; the ``silent_*``
windows last N virtual seconds from the moment they are set.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

RATES = frozenset(
    {
        "http_error_rate",
        "http_error_after_rate",
        "partial_fill_ratio",
        "trade_duplicate_rate",
        "trade_reorder_rate",
        "trade_drop_rate",
    }
)
COUNTERS = frozenset(
    {
        "latency_ms",
        "reject_next_orders",
        "refuse_next_orders",
        "refuse_next_cancels",
        "refuse_next_replaces",
        "drop_next_fill_events",
        "wash_trade_next_orders",
        "insufficient_qty_next_orders",
        "cancel_next_orders",
        "expire_next_orders",
        "partial_next_orders",
        "error_next_orders",
        "error_after_next_orders",
        "hold_next_cancels",
        "hold_next_replaces",
        "error_next_cancels",
        "error_after_next_cancels",
        "error_next_replaces",
        "error_after_next_replaces",
    }
)
SWITCHES = frozenset({"drop_streams", "drop_trade_streams", "drop_data_streams"})
TEXTS = frozenset({"refuse_message"})
MAX_TEXT = 300
WINDOWS = frozenset({"silent_trade_seconds", "silent_data_seconds"})
DURATIONS = frozenset({"hold_seconds"})
MAX_COUNT = 10_000_000
MAX_WINDOW_SECONDS = 10 * 365 * 86_400


@dataclass
class Faults:
    """What to break, on demand. The server applies the HTTP/stream ones, the core the rest."""

    # REST (server middleware)
    http_error_rate: float = 0.0  # answered http_status before the core sees the request
    http_error_after_rate: float = 0.0  # processed by the core, then answered http_status
    http_status: int = 503
    latency_ms: int = 0
    # orders (exchange core)
    reject_next_orders: int = 0  # accepted (200), then rejected on the stream
    refuse_next_orders: int = 0  # refused at once: 403 with refuse_message
    refuse_message: str = "insufficient buying power"  # any order-level 403 Alpaca gives
    refuse_next_cancels: int = 0  # 204 and pending_cancel, then order_cancel_rejected
    refuse_next_replaces: int = 0  # 200 and pending_replace, then order_replace_rejected
    partial_fill_ratio: float = 0.0
    # The broker's answer to the next order, cancel or replace (exchange core, so the
    # in-process broker and the HTTP server both give it; each counter is one request).
    wash_trade_next_orders: int = 0  # refused at once: 403 potential wash trade
    insufficient_qty_next_orders: int = 0  # sells refused at once: 403 insufficient qty
    cancel_next_orders: int = 0  # accepted (200), then canceled by the broker on the stream
    expire_next_orders: int = 0  # accepted (200), then expired on the stream
    partial_next_orders: int = 0  # its first fill is a part only; the rest works on
    error_next_orders: int = 0  # answered http_status before anything is created
    error_after_next_orders: int = 0  # created and working, then answered http_status
    hold_next_cancels: int = 0  # 204 and pending_cancel for hold_seconds, then canceled
    hold_next_replaces: int = 0  # 200 and pending_replace for hold_seconds, then replaced
    hold_seconds: float = 30.0  # how long a held cancel or replace stays pending
    error_next_cancels: int = 0  # DELETE answered http_status, nothing done
    error_after_next_cancels: int = 0  # the cancel is in flight, then answered http_status
    error_next_replaces: int = 0  # PATCH answered http_status, nothing done
    error_after_next_replaces: int = 0  # the replace is in flight, then answered http_status
    # streams (server stream hub)
    drop_streams: bool = False  # close every websocket once
    drop_trade_streams: bool = False  # close every trade-updates websocket once
    drop_data_streams: bool = False  # close every market-data websocket once
    trade_duplicate_rate: float = 0.0  # trade-update frames sent twice
    trade_reorder_rate: float = 0.0  # held back, sent after the connection's next frame
    trade_drop_rate: float = 0.0  # lost on the socket (REST unaffected)
    drop_next_fill_events: int = 0  # fill/partial_fill events never sent on the stream
    silent_trade_seconds: float = 0.0  # trade sockets open, answering pings, sending nothing
    silent_data_seconds: float = 0.0  # the same for market-data sockets
    seed: int = 0

    def __post_init__(self) -> None:
        self._now: Callable[[], datetime] | None = None
        self._silent_until: dict[str, datetime] = {}

    def use_clock(self, now: Callable[[], datetime]) -> None:
        """Time the ``silent_*`` windows with ``now`` (the exchange's virtual clock)."""
        self._now = now

    def update(self, **changes: Any) -> None:
        """Set the given fields after validating names, types and ranges (ValueError naming
        the field); nothing changes if any field is invalid. A ``silent_*`` window starts
        when it is set (0 ends it)."""
        known = {f.name for f in fields(self)}
        checked: dict[str, Any] = {}
        for name, value in changes.items():
            if name not in known:
                raise ValueError(f"unknown fault field: {name}")
            checked[name] = _checked(name, value)
        if any(name in WINDOWS and value for name, value in checked.items()) and not self._now:
            raise ValueError("silent windows need the exchange's clock (Faults.use_clock)")
        for name, value in checked.items():
            setattr(self, name, value)
            if name in WINDOWS:
                self._silent_until.pop(name, None)
                if value and self._now is not None:
                    self._silent_until[name] = self._now() + timedelta(seconds=value)

    def take(self, name: str) -> bool:
        """Consume one of the counter fault ``name`` (``reject_next_orders``...): True if
        it was set, and then one less is left."""
        left = getattr(self, name)
        if left <= 0:
            return False
        setattr(self, name, left - 1)
        return True

    def silent(self, name: str, now: datetime) -> bool:
        """Whether the window ``name`` (``silent_trade_seconds``/``silent_data_seconds``)
        is still running at ``now``."""
        until = self._silent_until.get(name)
        return until is not None and now < until

    def as_dict(self) -> dict[str, Any]:
        """Current settings as a JSON-ready dict."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _checked_text(name: str, value: Any) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_TEXT:
        raise ValueError(f"{name} must be a non-empty string of at most {MAX_TEXT} chars")
    return value


def _checked(name: str, value: Any) -> Any:
    if name in TEXTS:
        return _checked_text(name, value)
    if name in SWITCHES:
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be a boolean")
        return value
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, not a boolean")
    if name in RATES:
        if not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"{name} must be a number between 0 and 1")
        return float(value)
    if name in WINDOWS or name in DURATIONS:
        if not isinstance(value, int | float) or not 0.0 <= float(value) <= MAX_WINDOW_SECONDS:
            raise ValueError(f"{name} must be a number of seconds >= 0")
        return float(value)
    if not isinstance(value, int):
        raise ValueError(f"{name} must be an integer")
    if name == "http_status" and not 400 <= value <= 599:
        raise ValueError(f"{name} must be an HTTP error status (400-599)")
    if name in COUNTERS and not 0 <= value <= MAX_COUNT:
        raise ValueError(f"{name} must be a non-negative integer")
    return value
