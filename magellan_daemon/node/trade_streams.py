"""The trade-update streams, one per account: every order's news, into the event sink.

Each stream's (re)connection schedules a reconciliation of its account: what happened while
it was down is read from the broker. Startup waits (bounded) until every stream is connected.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping

from magellan_daemon.adapters.alpaca.stream import SupervisedStream, trade_updates_stream
from magellan_daemon.domain import BrokerEvent
from magellan_daemon.errors import BrokerError
from magellan_daemon.node.endpoint import Endpoint
from magellan_daemon.tasks import Supervisor

STREAM_CONNECT_SECONDS = 30.0


class TradeStreams:
    """The trade-update streams of every account."""

    def __init__(self, endpoints: Mapping[str, Endpoint]) -> None:
        self._endpoints = endpoints
        self.streams: dict[str, SupervisedStream] = {}

    def start(
        self,
        *,
        on_event: Callable[[BrokerEvent], object],
        on_connected: Callable[[str], None],
        supervisor: Supervisor,
    ) -> None:
        """Start each account's stream as critical tasks; ``on_connected(account)`` at each
        (re)connection."""
        for name, endpoint in self._endpoints.items():
            stream = trade_updates_stream(
                account=name,
                key=endpoint.key,
                secret=endpoint.secret,
                paper=endpoint.paper,
                url=endpoint.trading_ws,
                on_event=on_event,
                on_connected=functools.partial(on_connected, name),
            )
            self.streams[name] = stream
            stream.start(supervisor.spawn)

    async def wait_connected(self) -> None:
        """Return once every stream is connected; raises ``BrokerError`` after
        ``STREAM_CONNECT_SECONDS``."""
        loop = asyncio.get_running_loop()
        end = loop.time() + STREAM_CONNECT_SECONDS
        while not all(s.stats.connected for s in self.streams.values()):
            if loop.time() > end:
                down = [a for a, s in self.streams.items() if not s.stats.connected]
                raise BrokerError(
                    f"trade stream of {', '.join(down)} not connected in "
                    f"{STREAM_CONNECT_SECONDS:g} s"
                )
            await asyncio.sleep(0.02)

    async def reconnect(self, account: str) -> None:
        """Drop and reopen the account's stream (recovery's answer to a silent stream)."""
        stream = self.streams.get(account)
        if stream is not None:
            await stream.reconnect()

    async def stop(self) -> None:
        """Stop every stream (teardown)."""
        for stream in self.streams.values():
            await stream.stop()
