"""Streamed minute bars handed to a strategy without a gap, on every connection.

Bars that complete between the REST warm-up and the subscription, or while the socket was
down, exist only over REST. So on every (re)connect the feed buffers what the stream sends,
fetches over REST (in its own task: the stream consumer never waits) every completed bar
since the last one the strategy has seen, then hands the strategy both, deduplicated by
(symbol, bar time) and in time order, and passes streamed bars straight through again.

A backfilled bar that ended more than ``STALE_AFTER`` before the connection goes in as
warm-up (indicators and session state, no decision): a signal on a bar minutes old is not a
signal any more, and the positions held meanwhile were protected by their resting stops and
the clock's exits. (Measured from the connection, not from when the REST answer arrives, so
a slow backfill does not turn fresh bars stale.)

Streamed bars are handed over as columnar batches (``BarBatch``, one per frame from the bar
socket): the frames that arrive together (a minute's burst of the whole market comes as a
few frames of many bars) are joined and posted at once when the stream consumer yields, in
chunks of at most ``BATCH`` rows, each evaluated by the runner in one call, so an entry in
the first chunk reaches the router before the last chunk is evaluated (one call for the
whole minute would hold every entry back by the whole minute's evaluation).

``silent(now)`` says whether the stream has said nothing for ``SILENCE`` of market time and
``SILENCE_WALL_SECONDS`` of wall time: both, so a fast virtual clock on a loaded machine is
not taken for a dead socket.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from magellan_core.clock import Clock
from magellan_daemon.adapters.bar_batch import BarBatch
from magellan_daemon.runtime.strategy_runner import StrategyRunner
from magellan_daemon.tasks import spawn
from strategies.api.model import Bar

log = logging.getLogger(__name__)
BAR = timedelta(minutes=1)
STALE_AFTER = timedelta(minutes=2)
LOOKBACK = timedelta(days=4)  # no bar seen at all: this much history
SILENCE = timedelta(minutes=3)
SILENCE_WALL_SECONDS = 15.0
BATCH = 500  # bars per post: about 1 ms of Bear Trap's work

Fetch = Callable[[datetime, datetime], Awaitable[list[Bar]]]


class BarFeed:
    """Between one account's minute-bar stream and one strategy runner."""

    def __init__(self, runner: StrategyRunner, fetch: Fetch, clock: Clock) -> None:
        self._runner = runner
        self._fetch = fetch
        self._clock = clock
        self._buffer: list[Bar] | None = None  # not None while a backfill runs
        self._again = False
        self.last_streamed: datetime | None = None  # end of the newest bar the stream sent
        self.connected_at: datetime | None = None
        self._heard_wall = time.monotonic()  # the last bar or connection, in wall time
        self._pending: list[BarBatch] = []  # streamed frames to post once the consumer yields

    def on_connected(self) -> None:
        """The stream is (re)connected and subscribed: buffer and backfill (never waits)."""
        self.connected_at = self._clock.now()
        self._heard_wall = time.monotonic()
        if self._buffer is not None:
            self._again = True  # a backfill runs: it goes round once more
            return
        self._buffer = []
        spawn(self._backfill(), name=f"bar-backfill-{self._runner.name}")

    def silent(self, now: datetime, since: datetime) -> bool:
        """No bar (nor a connection) since ``since`` or later, for ``SILENCE`` of market time
        and ``SILENCE_WALL_SECONDS`` of wall time."""
        marks = [t for t in (self.last_streamed, self.connected_at, since) if t is not None]
        if self.connected_at is None:
            return False  # not connected yet: the stream's own reconnects are at work
        quiet_wall = time.monotonic() - self._heard_wall
        return now - max(marks) > SILENCE and quiet_wall > SILENCE_WALL_SECONDS

    def heard(self) -> None:
        """Count a deliberate reconnect as news (it gets its own time to deliver)."""
        self._heard_wall = time.monotonic()
        self.connected_at = self._clock.now()

    def on_batch(self, batch: BarBatch) -> None:
        """A frame's streamed bars as columns (never waits)."""
        if not batch.symbol:
            return
        end = max(batch.t) + BAR
        self._heard_wall = time.monotonic()
        if self.last_streamed is None or end > self.last_streamed:
            self.last_streamed = end
        if self._buffer is not None:
            self._buffer += batch.bars()  # the rare path: a backfill merges Bars
            return
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._post_pending)
        self._pending.append(batch)

    def on_bar(self, bar: Bar) -> None:
        """One streamed bar (never waits)."""
        self.on_batch(BarBatch.of([bar]))

    def _post_pending(self) -> None:
        batches, self._pending = self._pending, []
        merged = batches[0]
        for more in batches[1:]:
            merged.extend(more)
        for i in range(0, len(merged), BATCH):
            self._runner.post_batch(merged.slice(i, i + BATCH) if len(merged) > BATCH else merged)

    async def _backfill(self) -> None:
        try:
            while True:
                self._again = False
                now = self._clock.now()
                seen = list(self._runner.last_bar.values())
                start = max(min(seen) + BAR, now - LOOKBACK) if seen else now - LOOKBACK
                fetched = [b for b in await self._fetch(start, now) if b.t + BAR <= now]
                if not self._again:
                    break
        except Exception as exc:  # the stream still runs: the next reconnect tries again
            log.warning("%s: bar backfill failed (%s): streamed bars go on", self._runner.name, exc)
            fetched = []
        buffered = self._buffer or []
        self._buffer = None
        merged = {(b.symbol, b.t): b for b in fetched}
        merged.update({(b.symbol, b.t): b for b in buffered})
        ordered = sorted(merged.values(), key=lambda b: (b.t, b.symbol))
        cutoff = (self.connected_at or self._clock.now()) - STALE_AFTER
        stale = [b for b in ordered if b.t + BAR <= cutoff]
        live = [b for b in ordered if b.t + BAR > cutoff]
        if stale:
            self._runner.post_warmup(stale)
        if live:
            self._runner.post_bars(live)
        missed = len(self._runner.new_bars(fetched))
        log.info(
            "%s: bar stream connected: %d bars backfilled over REST (%d as warm-up), %d "
            "buffered from the stream",
            self._runner.name,
            missed,
            len(stale),
            len(buffered),
        )
