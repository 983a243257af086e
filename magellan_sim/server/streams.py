"""The two websockets: trade updates (alpaca-wire 4) and market data (alpaca-wire 5.3).

Each connection owns an outgoing queue drained by one writer task, so replies and events
leave in the order they were produced, and the exchange's synchronous listener never
blocks on a socket. Undecodable or unexpected frames get an error reply; nothing a client
sends can end the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgpack
import orjson
from aiohttp import WSMsgType, web

from magellan_sim.market.market import SimBar
from magellan_sim.server.auth import Credentials
from magellan_sim.server.streamfaults import Fate, StreamFaults

log = logging.getLogger(__name__)

MAX_FRAME = 1 << 20
BATCH = 200  # stream messages per frame: well under alpaca-py's 1 MiB frame limit
DATA_CHANNELS = ("trades", "quotes", "bars", "updatedBars", "dailyBars", "statuses", "lulds")
TRADE_STREAMS = frozenset({"trade_updates"})
CLOSE_GOING_AWAY = 1001


@dataclass(eq=False)
class _Connection:
    """One websocket with its ordered outgoing queue."""

    ws: web.WebSocketResponse
    outbox: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)
    key: str | None = None
    close_after_send: bool = False
    # the silent_* fault: while it returns True nothing is sent (and nothing kept for later)
    muted: Callable[[], bool] = lambda: False
    held: bytes | None = None  # a frame the reorder fault sends after the next one
    # told of each frame as it is written (before the write: a hook's callback that kills
    # the client lands before the client can act on the frame)
    sent: Callable[[bytes], None] | None = None

    def put(self, frame: bytes) -> None:
        """Queue ``frame``, then the frame held back for after it, if any."""
        if self.muted():
            self.held = None
            return
        self.outbox.put_nowait(frame)
        if self.held is not None:
            self.outbox.put_nowait(self.held)
            self.held = None

    async def write_loop(self) -> None:
        """Send queued frames in order until the sentinel or a closed socket."""
        while (frame := await self.outbox.get()) is not None:
            if self.ws.closed:
                return
            if self.sent is not None:
                self.sent(frame)
            try:
                await self.ws.send_bytes(frame)
            except (ConnectionError, RuntimeError):
                return
        await self.ws.close()


@dataclass(eq=False)
class _TradeConnection(_Connection):
    streams: set[str] = field(default_factory=set)


@dataclass(eq=False)
class _DataConnection(_Connection):
    subscriptions: dict[str, dict[str, None]] = field(
        default_factory=lambda: {channel: {} for channel in DATA_CHANNELS}
    )
    version: int = 0  # moves with every change of key or subscription (frames packed ahead)

    def subscribed(self, channel: str, symbol: str) -> bool:
        """Whether this connection wants ``channel`` data for ``symbol``."""
        wanted = self.subscriptions[channel]
        return symbol in wanted or "*" in wanted

    def subscription_message(self) -> dict[str, Any]:
        """The full current subscription set, as Alpaca answers every (un)subscribe."""
        message: dict[str, Any] = {"T": "subscription"}
        for channel in DATA_CHANNELS:
            message[channel] = list(self.subscriptions[channel])
        message["corrections"] = list(self.subscriptions["trades"])
        message["cancelErrors"] = list(self.subscriptions["trades"])
        return message


PackedBars = dict[_DataConnection, tuple[int, list[bytes]]]  # by connection: version, frames


def _pack(messages: list[dict[str, Any]]) -> bytes:
    return msgpack.packb(messages, datetime=False)


def _data_error(code: int, message: str) -> bytes:
    return _pack([{"T": "error", "code": code, "msg": message}])


def _decode_data_frame(msg: Any) -> dict[str, Any] | None:
    """A client's control message (msgpack binary or JSON text), or None if undecodable."""
    try:
        if msg.type == WSMsgType.BINARY:
            value = msgpack.unpackb(msg.data, raw=False, timestamp=0)
        else:
            value = orjson.loads(msg.data)
    except Exception:  # msgpack raises many types; any undecodable frame is a syntax error
        return None
    if not isinstance(value, dict) or not isinstance(value.get("action"), str):
        return None
    return value


def _decode_trade_frame(msg: Any) -> dict[str, Any] | None:
    try:
        value = orjson.loads(msg.data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("action"), str):
        return None
    return value


class StreamHub:
    """Every open websocket, the trade-event fan-out and the bar publisher's fan-out."""

    def __init__(
        self,
        credentials: Credentials,
        stream_bar: Callable[[SimBar], dict],
        faults: StreamFaults,
        on_trade_frame_sent: Callable[[bytes], None] | None = None,
    ) -> None:
        self._credentials = credentials
        self._stream_bar = stream_bar
        self.faults = faults
        self._on_trade_frame_sent = on_trade_frame_sent
        # dicts, not sets: fan-out in connection order keeps seeded fault draws reproducible
        self._trade: dict[_TradeConnection, None] = {}
        self._data: dict[_DataConnection, None] = {}
        self._data_by_key: dict[str, _DataConnection] = {}
        self._changed = asyncio.Condition()

    # -- test and daemon hooks -----------------------------------------------------------

    def trade_listeners(self, key: str) -> int:
        """How many trade-stream connections of ``key`` listen to ``trade_updates``."""
        return sum(1 for c in self._trade if c.key == key and "trade_updates" in c.streams)

    def bar_subscribers(self, symbol: str) -> int:
        """How many data-stream connections receive minute bars for ``symbol``."""
        return sum(1 for c in self._data if c.key and c.subscribed("bars", symbol))

    def wants_bars(self) -> bool:
        """Whether any connection subscribes to minute bars at all."""
        return any(c.key and c.subscriptions["bars"] for c in self._data)

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Return once ``predicate()`` holds (re-checked at every connection state change)."""
        async with self._changed:
            await self._changed.wait_for(predicate)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # -- fan-out ---------------------------------------------------------------------------

    def on_trade_event(self, account_key: str, message: dict[str, Any]) -> None:
        """Exchange listener: queue the event for every listening connection of the account
        (subject to the stream faults)."""
        if self.faults.withhold_event(message):
            return
        frame: bytes | None = None
        for conn in list(self._trade):
            if conn.key == account_key and "trade_updates" in conn.streams:
                frame = frame or orjson.dumps(message)
                self._send_trade_update(conn, frame)

    def _send_trade_update(self, conn: _TradeConnection, frame: bytes) -> None:
        fate = self.faults.fate(can_hold=conn.held is None)
        if fate is Fate.DROP:
            return
        if fate is Fate.HOLD:
            if not conn.muted():
                conn.held = frame
            return
        conn.put(frame)
        if fate is Fate.TWICE:
            conn.put(frame)

    def publish_bars(self, bars: Iterable[SimBar]) -> None:
        """Queue each subscribed connection's share of ``bars`` as T:"b" messages."""
        bars = list(bars)
        if not bars:
            return
        for conn in self._data:
            if conn.key is None:
                continue
            for frame in self._bar_frames(conn, bars):
                conn.put(frame)

    def pack_bars(self, bars: list[SimBar]) -> PackedBars:
        """Each connection's frames of ``bars``, packed now to be queued later
        (``publish_packed``): the publisher's pre-packing for benchmarks."""
        return {
            conn: (conn.version, self._bar_frames(conn, bars))
            for conn in self._data
            if conn.key is not None
        }

    def publish_packed(self, bars: list[SimBar], packed: PackedBars) -> None:
        """What ``publish_bars(bars)`` queues, from frames packed ahead where the connection's
        subscription is still the one they were packed for (packed afresh otherwise)."""
        if not bars:
            return
        for conn in self._data:
            if conn.key is None:
                continue
            ahead = packed.get(conn)
            frames = ahead[1] if ahead and ahead[0] == conn.version else None
            for frame in frames if frames is not None else self._bar_frames(conn, bars):
                conn.put(frame)

    def _bar_frames(self, conn: _DataConnection, bars: list[SimBar]) -> list[bytes]:
        wanted = [self._bar_message(bar) for bar in bars if conn.subscribed("bars", bar.symbol)]
        return [_pack(wanted[i : i + BATCH]) for i in range(0, len(wanted), BATCH)]

    def _bar_message(self, bar: SimBar) -> dict[str, Any]:
        message = dict(self._stream_bar(bar))
        stamp = message.get("t", bar.t)
        if isinstance(stamp, datetime):
            message["t"] = msgpack.Timestamp.from_datetime(stamp)
        return message

    async def close_all(self, *, trade: bool = True, data: bool = True) -> int:
        """Close every open websocket, or only the trade or the data ones (clients see a
        normal close and reconnect); returns how many were closed."""
        connections: list[_Connection] = []
        # forget them first: no event may be queued to a socket that is going away
        if trade:
            connections += list(self._trade)
            self._trade.clear()
        if data:
            connections += list(self._data)
            self._data.clear()
            self._data_by_key.clear()
        await self._notify()
        for conn in connections:
            with contextlib.suppress(Exception):
                await conn.ws.close(code=CLOSE_GOING_AWAY, message=b"simulator dropped streams")
        return len(connections)

    # -- trade updates -------------------------------------------------------------------

    async def trade_stream(self, request: web.Request) -> web.WebSocketResponse:
        """GET /stream: no greeting; auth, then listen; events as binary JSON frames."""
        ws = web.WebSocketResponse(max_msg_size=MAX_FRAME, autoping=True)
        await ws.prepare(request)
        conn = _TradeConnection(
            ws=ws, muted=self.faults.trade_silent, sent=self._on_trade_frame_sent
        )
        self._trade[conn] = None
        writer = asyncio.create_task(conn.write_loop())
        try:
            async for msg in ws:
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    await self._on_trade_message(conn, msg)
                    if conn.close_after_send:
                        break
        finally:
            self._trade.pop(conn, None)
            await self._finish(conn, writer)
        return ws

    async def _on_trade_message(self, conn: _TradeConnection, msg: Any) -> None:
        request = _decode_trade_frame(msg)
        if request is None:
            self._send_json(conn, {"stream": "error", "data": {"error": "invalid syntax"}})
            return
        action, data = request["action"], request.get("data")
        data = data if isinstance(data, dict) else {}
        if action in ("authenticate", "auth"):
            key = data.get("key_id", request.get("key"))
            secret = data.get("secret_key", request.get("secret"))
            if "oauth_token" in data:
                key, secret = data["oauth_token"], None
            conn.key = self._credentials.account_for(key, secret)
            status = "authorized" if conn.key is not None else "unauthorized"
            reply = {"action": "authenticate", "status": status}
            self._send_json(conn, {"stream": "authorization", "data": reply})
            conn.close_after_send = conn.key is None
        elif action == "listen":
            if conn.key is None:
                reply = {"action": "listen", "status": "unauthorized"}
                self._send_json(conn, {"stream": "authorization", "data": reply})
                return
            streams = data.get("streams")
            if not isinstance(streams, list):
                self._send_json(conn, {"stream": "error", "data": {"error": "invalid syntax"}})
                return
            conn.streams = {s for s in streams if isinstance(s, str) and s in TRADE_STREAMS}
            self._send_json(
                conn, {"stream": "listening", "data": {"streams": sorted(conn.streams)}}
            )
        else:
            self._send_json(conn, {"stream": "error", "data": {"error": "invalid action"}})
        await self._notify()

    @staticmethod
    def _send_json(conn: _Connection, message: dict[str, Any]) -> None:
        conn.put(orjson.dumps(message))

    # -- market data -----------------------------------------------------------------------

    async def data_stream(self, request: web.Request) -> web.WebSocketResponse:
        """GET /v2/iex, /v2/sip: connected, auth, (un)subscribe; msgpack array frames."""
        ws = web.WebSocketResponse(max_msg_size=MAX_FRAME, autoping=True)
        await ws.prepare(request)
        conn = _DataConnection(ws=ws, muted=self.faults.data_silent)
        self._data[conn] = None
        writer = asyncio.create_task(conn.write_loop())
        conn.put(_pack([{"T": "success", "msg": "connected"}]))
        try:
            async for msg in ws:
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    self._on_data_message(conn, msg)
                    await self._notify()
                    if conn.close_after_send:
                        break
        finally:
            self._data.pop(conn, None)
            if conn.key is not None and self._data_by_key.get(conn.key) is conn:
                del self._data_by_key[conn.key]
            await self._finish(conn, writer)
        return ws

    def _on_data_message(self, conn: _DataConnection, msg: Any) -> None:
        request = _decode_data_frame(msg)
        if request is None:
            conn.put(_data_error(400, "invalid syntax"))
            return
        action = request["action"]
        if action == "auth":
            self._data_auth(conn, request)
        elif action in ("subscribe", "unsubscribe"):
            if conn.key is None:
                conn.put(_data_error(401, "not authenticated"))
                return
            self._data_subscribe(conn, request, add=action == "subscribe")
        else:
            conn.put(_data_error(400, "invalid syntax"))

    def _data_auth(self, conn: _DataConnection, request: dict[str, Any]) -> None:
        if conn.key is not None:
            conn.put(_data_error(403, "already authenticated"))
            return
        key = self._credentials.account_for(request.get("key"), request.get("secret"))
        if key is None:
            conn.put(_data_error(402, "auth failed"))
            conn.close_after_send = True
            return
        if key in self._data_by_key:
            conn.put(_data_error(406, "connection limit exceeded"))
            conn.close_after_send = True
            return
        conn.key = key
        conn.version += 1
        self._data_by_key[key] = conn
        conn.put(_pack([{"T": "success", "msg": "authenticated"}]))

    def _data_subscribe(self, conn: _DataConnection, request: dict[str, Any], *, add: bool) -> None:
        changes: dict[str, list[str]] = {}
        for channel in DATA_CHANNELS:
            symbols = request.get(channel)
            if symbols is None:
                continue
            if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
                conn.put(_data_error(400, "invalid syntax"))
                return
            changes[channel] = symbols
        conn.version += 1
        for channel, symbols in changes.items():
            current = conn.subscriptions[channel]
            for symbol in symbols:
                name = symbol if symbol == "*" else symbol.upper()
                if add:
                    current[name] = None
                else:
                    current.pop(name, None)
        conn.put(_pack([conn.subscription_message()]))

    # -- shared ----------------------------------------------------------------------------

    async def _finish(self, conn: _Connection, writer: asyncio.Task[None]) -> None:
        """Flush what is queued (e.g. a final error reply), then close the socket."""
        conn.outbox.put_nowait(None)
        try:
            await asyncio.wait_for(writer, timeout=5)
        except TimeoutError:
            writer.cancel()
        with contextlib.suppress(Exception):
            await conn.ws.close()
        await self._notify()
