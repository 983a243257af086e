"""The two websockets of one account, run inside our event loop and supervised.

The minute-bar stream is read by our own client (``bar_socket.BarSocket``: Alpaca's data
protocol on ``websockets``, one unpack per frame, rows in a ``BarBatch``): it is the hot path
of a full-market minute. The trade-updates stream stays on alpaca-py's ``TradingStream``: a
few events a minute, where the SDK's per-message dispatch costs nothing that matters. Both
run under the same ``SupervisedStream`` (reconnect with backoff, connection markers, one
consumer); what follows about the SDK is the trade stream's.

Decision (style lesson 9): the alpaca-py streams are awaited in OUR loop through their
private ``_run_forever()`` coroutine. Their public ``run()`` calls ``asyncio.run`` and cannot
be used inside a running loop, and their sync ``stop()``/``subscribe_*()`` deadlock on the
loop thread, so we register handlers before starting and stop with ``await stop_ws()``.
alpaca-py 0.44 reconnects by itself with jittered exponential backoff (0.5 s .. 30 s) and
re-authenticates; it gives no reconnect callback, so we override ``_start_ws`` to put a
``CONNECTED`` marker on our queue after every (re)connect, and ``close`` (which the SDK calls
before every reconnect) to put a ``DISCONNECTED`` one. The queue's one consumer handles
frames and markers in arrival order with synchronous callbacks: it never awaits REST, a
lane or a strategy. A ``CONNECTED`` marker *schedules* the reconciliation (or the bar
backfill) in its own task. If ``_run_forever`` ever returns or raises while we still want
the stream, the supervisor restarts it after a jittered backoff, forever; ``reconnect``
makes it do so on purpose (a socket that is connected but silent).

Frames are taken raw (``raw_data=True``) so a frame the SDK's models reject is not lost inside
the SDK: we parse it ourselves and send a bad one to a WARNING line and a counter. The handler
does one thing: ``queue.put_nowait``. Anything else that fails in the consumer (the ledger
cannot be written) ends it, and the daemon treats that as fatal: it exits non-zero, systemd
restarts it, and the startup reconciliation repairs what was missed.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from alpaca.trading.stream import TradingStream

from magellan_daemon.adapters.alpaca.bar_socket import BarSocket, on_frame_reader, what_is_wrong
from magellan_daemon.adapters.alpaca.convert import event_from_trade_update
from magellan_daemon.adapters.bar_batch import BarBatch
from magellan_daemon.domain import BrokerEvent
from magellan_daemon.tasks import spawn

log = logging.getLogger(__name__)
DATA_WS = "wss://stream.data.alpaca.markets/v2"  # alpaca-py's default, + /iex or /sip
CONNECTED = object()
DISCONNECTED = object()


@dataclass
class StreamStats:
    """What the health line and the metrics show about one stream."""

    connected: bool = False
    connects: int = 0
    bad_frames: int = 0


def _signalling(sdk_stream: type[Any]) -> type[Any]:
    """``sdk_stream`` (an alpaca-py stream class) that reports its connection state on our
    queue: ``CONNECTED`` after every (re)connect, ``DISCONNECTED`` on every close (the SDK
    closes before each reconnect, and on stop), which health and metrics must see."""

    class Signalling(sdk_stream):  # type: ignore[misc, valid-type]
        def __init__(self, queue: asyncio.Queue[Any], *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._magellan_queue = queue

        async def _start_ws(self) -> None:
            await super()._start_ws()
            self._magellan_queue.put_nowait(CONNECTED)

        async def close(self) -> None:
            await super().close()
            self._magellan_queue.put_nowait(DISCONNECTED)

    Signalling.__name__ = f"Signalling{sdk_stream.__name__}"
    return Signalling


_SignallingTradingStream = _signalling(TradingStream)


class SupervisedStream:
    """Owns one SDK stream task and one consumer task; restarts the SDK loop forever.

    ``make_sdk(queue, handler)`` builds a fresh SDK stream whose handler is ``handler`` and
    whose ``_start_ws`` puts ``CONNECTED`` on ``queue``; ``on_frame`` and ``on_connected`` are
    awaited by the single consumer, in arrival order.
    """

    def __init__(
        self,
        name: str,
        make_sdk: Callable[[asyncio.Queue[Any], Callable[[Any], Awaitable[None]]], Any],
        on_frame: Callable[[Any], None],
        on_connected: Callable[[], None],
    ) -> None:
        self.name = name
        self.stats = StreamStats()
        self._make_sdk = make_sdk
        self._on_frame = on_frame
        self._on_connected = on_connected
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._sdk: Any = None

    async def _handler(self, frame: Any) -> None:
        try:
            self._queue.put_nowait(frame)
        except Exception:  # never raise into the SDK's receive loop
            log.exception("%s: could not queue a frame", self.name)

    def start(self, supervise: Callable[..., asyncio.Task[Any]] = spawn) -> None:
        """Start the SDK loop and the consumer (call once, from the event loop); ``supervise``
        spawns them (the daemon's ``Supervisor.spawn``: their death is fatal)."""
        self._tasks = [
            supervise(self._supervise(), name=f"{self.name}-sdk"),
            supervise(self.consume(), name=f"{self.name}-consumer"),
        ]

    async def reconnect(self) -> None:
        """Close the socket on purpose; the supervisor connects again (with backoff)."""
        sdk = self._sdk
        if sdk is not None and not self._stopping:
            log.warning("%s: reconnecting on purpose", self.name)
            try:
                await asyncio.wait_for(sdk.stop_ws(), 10)
            except Exception:
                log.warning("%s: stop_ws did not finish cleanly", self.name)

    async def stop(self, timeout: float = 5.0) -> None:
        """Close the socket and end both tasks."""
        self._stopping = True
        if self._sdk is not None:
            try:
                await asyncio.wait_for(self._sdk.stop_ws(), timeout)
            except Exception:
                log.warning("%s: stop_ws did not finish cleanly", self.name)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.stats.connected = False

    async def _supervise(self) -> None:
        attempt = 0
        while not self._stopping:
            connects = self.stats.connects
            self._sdk = self._make_sdk(self._queue, self._handler)
            try:
                await self._sdk._run_forever()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: stream loop crashed; restarting", self.name)
            self.stats.connected = False
            if self._stopping:
                return
            attempt = 1 if self.stats.connects > connects else attempt + 1
            cap = min(30.0, 2.0**attempt)
            await asyncio.sleep(random.uniform(cap / 2, cap))

    async def consume(self) -> None:
        """Handle frames and connection markers in arrival order, forever."""
        while True:
            item = await self._queue.get()
            if item is DISCONNECTED:
                self.stats.connected = False
                continue
            if item is CONNECTED:
                self.stats.connected = True
                self.stats.connects += 1
                if self.stats.connects > 1:
                    log.warning("%s: reconnected (connection %d)", self.name, self.stats.connects)
                self._on_connected()
                continue
            self._on_frame(item)


def trade_updates_stream(
    *,
    account: str,
    key: str,
    secret: str,
    paper: bool,
    url: str | None,
    on_event: Callable[[BrokerEvent], object],
    on_connected: Callable[[], None],
) -> SupervisedStream:
    """One account's ``trade_updates``: every event parsed and handed to ``on_event``;
    ``on_connected`` (reconciliation) runs after every (re)connect before later events."""

    def make(queue: asyncio.Queue[Any], handler: Callable[[Any], Awaitable[None]]) -> Any:
        stream = _SignallingTradingStream(
            queue, key, secret, paper=paper, raw_data=True, url_override=url
        )
        stream.subscribe_trade_updates(handler)
        return stream

    supervised: SupervisedStream

    def on_frame(frame: Any) -> None:
        data = frame.get("data") if isinstance(frame, dict) else None
        try:
            event = event_from_trade_update(data)  # type: ignore[arg-type]
        except Exception as exc:
            supervised.stats.bad_frames += 1
            log.warning(
                "%s: unreadable trade update dropped (%s): %.200r",
                supervised.name,
                what_is_wrong(exc),
                frame,
            )
            return
        on_event(event)

    supervised = SupervisedStream(f"trade-updates[{account}]", make, on_frame, on_connected)
    return supervised


def bar_stream(
    *,
    account: str,
    key: str,
    secret: str,
    feed: str,
    url: str | None,
    symbols: Iterable[str],
    on_bars: Callable[[BarBatch], None],
    on_connected: Callable[[], None],
) -> SupervisedStream:
    """One account's market-data websocket, subscribed to minute bars of ``symbols``, read
    by our own client (``bar_socket``: one unpack per frame, rows in a ``BarBatch``)."""
    symbol_list = sorted(set(symbols))
    endpoint = url or f"{DATA_WS}/{'sip' if feed == 'sip' else 'iex'}"

    def make(queue: asyncio.Queue[Any], handler: Callable[[Any], Awaitable[None]]) -> Any:
        return BarSocket(
            queue,
            url=endpoint,
            key=key,
            secret=secret,
            symbols=symbol_list,
            connected=CONNECTED,
            disconnected=DISCONNECTED,
        )

    supervised: SupervisedStream

    def dropped() -> None:
        supervised.stats.bad_frames += 1

    name = f"bars[{account}]"
    supervised = SupervisedStream(name, make, on_frame_reader(name, on_bars, dropped), on_connected)
    return supervised
