"""Alpaca's market-data websocket read by us, for minute bars: the hot path of a full-market
minute (10,000 bars in a burst).

Why not alpaca-py's ``StockDataStream``: it unpacks each frame into messages and then awaits
one ``_dispatch`` coroutine per message (handler lookup, a task switch each), and we had one
more queue hop and one ``Bar`` per message behind it. Here the socket task puts each raw
frame on the stream's queue (``SupervisedStream``: one consumer, frames and connection
markers in arrival order), and the consumer turns a frame into rows of a ``BarBatch`` with one
``msgpack.unpackb`` and one loop: no coroutine, no object per message but the decoded map.

The protocol is Alpaca's data stream exactly (alpaca-wire 5.3), as alpaca-py speaks it: the
handshake header ``Content-Type: application/msgpack`` (binary msgpack frames, each an array
of maps), the server's ``[{"T":"success","msg":"connected"}]`` greeting, ``auth`` with key and
secret answered by ``success``/``authenticated`` or an ``error`` (402 auth failed, 406
connection limit, 409 insufficient subscription: the connection is given up and the
supervisor tries again with backoff), then one ``subscribe`` of the bars of every symbol,
answered by the full ``subscription`` set. Only then is ``CONNECTED`` queued: the bar feed's
backfill starts from a socket that is subscribed. Later ``error`` messages are logged (Alpaca
keeps the connection open after them); ``subscription`` and ``success`` are news for the log.

``b`` (minute bar) messages become rows. ``u`` (updated bar) messages come only to an
``updatedBars`` subscription, which we do not make: the strategy decided on the bar when it
came, and the runner's dedupe (a bar is evaluated once) would drop a correction anyway; so
one that arrives is skipped like any channel we did not ask for. A message or frame that is
not what Alpaca sends (not msgpack, not an array of maps, a bar with a missing or impossible
field: ``bar_check``) is dropped with a WARNING and counted; nothing in a frame can end the
consumer.

Timestamps are unpacked straight to aware UTC ``datetime`` (``timestamp=3``, in msgpack's C
code) instead of a ``Timestamp`` object per message that we then convert. Compression is not
offered: it is optional on Alpaca's side, and inflating a burst costs the CPU we measure.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import msgpack
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from magellan_daemon.adapters.bar_batch import BarBatch
from magellan_daemon.adapters.bar_check import row_problem

log = logging.getLogger(__name__)

MAX_FRAME = 1 << 20  # websockets' (and alpaca-py's) default; Alpaca's frames stay under it
HANDSHAKE_SECONDS = 10.0  # per reply; Alpaca itself gives 10 s to authenticate
_unpackb = msgpack.unpackb


class HandshakeError(Exception):
    """The server refused or garbled the handshake (the supervisor retries with backoff)."""


class FrameRead:
    """What one frame held: bar rows, control messages, and what was dropped (and why)."""

    __slots__ = ("batch", "controls", "dropped")

    def __init__(self) -> None:
        self.batch = BarBatch()
        self.controls: list[dict[str, Any]] = []
        self.dropped: list[tuple[str, Any]] = []  # (what is wrong, the message or frame)


def read_frame(frame: Any) -> FrameRead:
    """One websocket frame of the data stream, unpacked once, as rows and control messages.
    Never raises: whatever is not a message Alpaca sends lands in ``dropped``."""
    read = FrameRead()
    if not isinstance(frame, bytes | bytearray | memoryview):
        read.dropped.append(("not a binary msgpack frame", frame))
        return read
    try:
        messages = _unpackb(frame, raw=False, timestamp=3, strict_map_key=True)
    except Exception as exc:  # msgpack raises many types for a corrupt frame
        read.dropped.append((f"not msgpack ({type(exc).__name__})", bytes(frame[:200])))
        return read
    if not isinstance(messages, list):
        read.dropped.append(("not an array of messages", messages))
        return read
    batch = read.batch
    symbols, times = batch.symbol, batch.t
    opens, highs, lows, closes, volumes = (
        batch.open,
        batch.high,
        batch.low,
        batch.close,
        batch.volume,
    )
    for message in messages:
        if type(message) is not dict:
            read.dropped.append(("a message that is not a map", message))
            continue
        kind = message.get("T")
        if kind != "b":
            if kind in ("success", "error", "subscription"):
                read.controls.append(message)
            continue  # a channel we did not subscribe to (or an updated bar: see above)
        try:
            symbol = message["S"]
            t = message["t"]
            o = float(message["o"])
            h = float(message["h"])
            lo = float(message["l"])
            c = float(message["c"])
            v = float(message["v"])
            if type(symbol) is not str or not symbol:
                raise TypeError(f"symbol {symbol!r}")
            if type(t) is not datetime:
                t = _parse_time(t)
            problem = row_problem(o, h, lo, c, v, t)
        except Exception as exc:
            read.dropped.append((what_is_wrong(exc), message))
            continue
        if problem is not None:
            read.dropped.append((problem, message))
            continue
        symbols.append(symbol)
        times.append(t)
        opens.append(o)
        highs.append(h)
        lows.append(lo)
        closes.append(c)
        volumes.append(v)
    return read


def _parse_time(value: Any) -> datetime:
    """A bar time that is not a msgpack Timestamp: an ISO string (what a JSON feed sends)."""
    if not isinstance(value, str):
        raise TypeError(f"timestamp {value!r}")
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC)
    return parsed


def what_is_wrong(exc: Exception) -> str:
    """A message's or frame's fault in words: a KeyError alone prints only the key."""
    if isinstance(exc, KeyError):
        return f"missing field {exc}"
    if isinstance(exc, TypeError | AttributeError):
        return f"a field of the wrong type ({exc})"
    return str(exc) or type(exc).__name__


class BarSocket:
    """One connection's life: connect, authenticate, subscribe, then queue every frame.

    Shaped like the alpaca-py stream ``SupervisedStream`` drives (``_run_forever`` returns
    when the connection ends; ``stop_ws`` ends it): the supervisor owns the reconnects and
    their backoff, so there is one place that decides them."""

    def __init__(
        self,
        queue: asyncio.Queue[Any],
        *,
        url: str,
        key: str,
        secret: str,
        symbols: Sequence[str],
        connected: object,
        disconnected: object,
    ) -> None:
        self._queue = queue
        self._url = url
        self._key = key
        self._secret = secret
        self._symbols = list(symbols)
        self._connected = connected
        self._disconnected = disconnected
        self._ws: ClientConnection | None = None
        self._stopped = False

    async def _run_forever(self) -> None:
        """One connection until it closes (or ``stop_ws``). A connection that cannot be made
        or is refused is a WARNING without a traceback (the network or the key, not our code),
        and the supervisor tries again after its backoff."""
        try:
            await self._connection()
        except (OSError, TimeoutError, HandshakeError, WebSocketException) as exc:
            log.warning("bar socket %s: %s", self._url, str(exc) or type(exc).__name__)

    async def _connection(self) -> None:
        if self._stopped:
            return
        async with connect(
            self._url,
            additional_headers={"Content-Type": "application/msgpack"},
            compression=None,
            max_size=MAX_FRAME,
            max_queue=1024,  # frames read ahead of us: a whole burst, as alpaca-py allows
            ping_interval=10,  # alpaca-py's keepalive
            ping_timeout=180,
            open_timeout=HANDSHAKE_SECONDS,
        ) as ws:
            self._ws = ws
            try:
                if self._stopped:
                    return
                await self._handshake(ws)
                self._queue.put_nowait(self._connected)
                put = self._queue.put_nowait
                async for frame in ws:
                    put(frame)
            finally:
                self._ws = None
                self._queue.put_nowait(self._disconnected)

    async def _handshake(self, ws: ClientConnection) -> None:
        first = await self._control(ws)
        if first.get("T") != "success" or first.get("msg") != "connected":
            raise HandshakeError(f"connected message not received: {first!r:.200}")
        await ws.send(msgpack.packb({"action": "auth", "key": self._key, "secret": self._secret}))
        reply = await self._control(ws)
        if reply.get("T") == "error":
            raise HandshakeError(f"auth: {reply.get('msg')} ({reply.get('code')})")
        if reply.get("T") != "success" or reply.get("msg") != "authenticated":
            raise HandshakeError(f"failed to authenticate: {reply!r:.200}")
        await ws.send(msgpack.packb({"action": "subscribe", "bars": self._symbols}))
        reply = await self._control(ws)
        if reply.get("T") == "error":
            raise HandshakeError(f"subscribe: {reply.get('msg')} ({reply.get('code')})")
        if reply.get("T") != "subscription":
            raise HandshakeError(f"no subscription reply: {reply!r:.200}")
        log.debug("bar socket subscribed to %d symbols", len(reply.get("bars") or ()))

    @staticmethod
    async def _control(ws: ClientConnection) -> dict[str, Any]:
        """The next handshake reply: a frame holding one control map."""
        frame = await asyncio.wait_for(ws.recv(), HANDSHAKE_SECONDS)
        read = read_frame(frame)
        if not read.controls:
            raise HandshakeError(f"unexpected handshake frame: {frame!r:.200}")
        return read.controls[0]

    async def stop_ws(self) -> None:
        """Close the connection (``_run_forever`` then returns); no new one is opened."""
        self._stopped = True
        ws = self._ws
        if ws is not None:
            await ws.close()


def on_frame_reader(
    name: str,
    on_bars: Callable[[BarBatch], None],
    on_dropped: Callable[[], None],
) -> Callable[[Any], None]:
    """The consumer's handler of one frame: rows to ``on_bars``, controls to the log, what
    is wrong to a WARNING line and ``on_dropped``."""

    def on_frame(frame: Any) -> None:
        read = read_frame(frame)
        for why, what in read.dropped:
            on_dropped()
            log.warning("%s: unreadable bar dropped (%s): %.200r", name, why, what)
        for control in read.controls:
            if control.get("T") == "error":
                log.warning(
                    "%s: the server says: %s (%s)", name, control.get("msg"), control.get("code")
                )
            else:
                log.debug("%s: %r", name, control)
        if read.batch.symbol:
            on_bars(read.batch)

    return on_frame
