"""One strategy inside the daemon: its own queue of news, worked by one task.

Bars, clock ticks, order updates, warm-up history and the restart sync are all posted to the
runner's queue and handled one at a time by ``run``: the (pure) strategy is never called
from two places at once, and nobody who posts waits for it (a stream consumer posts and
goes on). Every call goes through ``_call``, which catches a strategy exception, logs
strategy and symbol, and turns it into "no intent for this symbol": one bad bar never stops
the others. After each call the evaluations, the intents and the strategy's snapshot are
written to the ledger before the intents are handed to the router (``submit``: queued on
their lanes, never awaited), so a restart rebuilds the strategy exactly and an intent is
never lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from magellan_daemon.clock import Clock
from magellan_daemon.ledger.store import Ledger
from magellan_daemon.router import OrderRouter
from magellan_daemon.sessions import SessionBook
from magellan_daemon.timefmt import iso, parse_iso
from strategies.model import Bar, HoldingView, OrderUpdate, Step, Strategy

log = logging.getLogger(__name__)
TIMEFRAME_LENGTH = {  # how long a bar of each timeframe lasts
    "1Min": timedelta(minutes=1),
    "1Hour": timedelta(hours=1),
    "1Day": timedelta(days=1),
}


@dataclass(eq=False)
class _Post:
    """One item of a runner's queue; ``done`` completes when it was handled."""

    kind: str  # bars, warmup, clock, update, sync
    payload: Any
    done: asyncio.Future[int] | None = field(default=None)


class StrategyRunner:
    """Feeds one strategy and routes what it decides."""

    def __init__(
        self,
        *,
        name: str,
        strategy: Strategy,
        symbols: Iterable[str],
        ledger: Ledger,
        router: OrderRouter,
        clock: Clock,
        sessions: Callable[[], SessionBook],
        execution_delay: timedelta = timedelta(0),
    ) -> None:
        self.name = name
        self.strategy = strategy
        self.symbols = sorted(set(symbols))
        self.timeframe: str = strategy.timeframe
        self._ledger = ledger
        self._router = router
        self._clock = clock
        self._sessions = sessions
        self.execution_delay = execution_delay
        self._queue: asyncio.Queue[_Post] = asyncio.Queue()
        self.last_bar: dict[str, datetime] = {}
        self.errors = 0

    # -- state ---------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The strategy's snapshot plus the last bar seen per symbol."""
        return {
            "strategy": self.strategy.snapshot(),
            "last_bar": {s: iso(t) for s, t in self.last_bar.items()},
        }

    def restore(self, factory: Callable[[dict[str, Any] | None], Strategy]) -> bool:
        """Rebuild the strategy from the ledger's snapshot; False when there is none."""
        saved = self._ledger.load_strategy_state(self.name)
        if not saved:
            return False
        self.strategy = factory(saved["strategy"])
        self.last_bar = {s: parse_iso(t) for s, t in saved.get("last_bar", {}).items()}
        return True

    def _save(self) -> None:
        self._ledger.save_strategy_state(self.name, self.snapshot(), self._clock.now())

    # -- posting (never waits for the strategy) ------------------------------------------

    def post_bars(self, bars: Sequence[Bar]) -> None:
        """Completed bars to evaluate."""
        self._queue.put_nowait(_Post("bars", list(bars)))

    def post_update(self, update: OrderUpdate) -> None:
        """News about one of the strategy's own orders."""
        self._queue.put_nowait(_Post("update", update))

    def post_warmup(self, bars: Sequence[Bar]) -> None:
        """History to feed without deciding anything (never waits)."""
        self._queue.put_nowait(_Post("warmup", list(bars)))

    def post_clock(self, now: datetime) -> None:
        """The time alone (time-driven exits of a strategy that has them)."""
        self._queue.put_nowait(_Post("clock", now))

    async def feed(self, bars: Sequence[Bar]) -> int:
        """Evaluate bars and wait until they were handled; returns how many were new."""
        return await self._call_and_wait("bars", list(bars))

    async def warmup(self, bars: Iterable[Bar]) -> int:
        """Feed history without producing intents; returns how many bars were new."""
        return await self._call_and_wait("warmup", list(bars))

    async def sync(self, views: Mapping[str, HoldingView]) -> int:
        """After a restart: the ledger's view of the strategy's holdings (see
        ``Strategy.sync``); returns how many intents it produced."""
        return await self._call_and_wait("sync", dict(views))

    async def _call_and_wait(self, kind: str, payload: Any) -> int:
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Post(kind, payload, done))
        return await done

    # -- the worker ----------------------------------------------------------------------

    async def run(self) -> None:
        """Handle posted items forever, one at a time (the daemon supervises this task)."""
        while True:
            post = await self._queue.get()
            try:
                result = self._handle(post)
            except Exception as exc:
                if post.done is not None and not post.done.done():
                    post.done.set_exception(exc)
                raise
            if post.done is not None and not post.done.done():
                post.done.set_result(result)

    def _handle(self, post: _Post) -> int:
        if post.kind == "bars":
            return self._on_bars(post.payload)
        if post.kind == "warmup":
            return self._warmup(post.payload)
        if post.kind == "update":
            update: OrderUpdate = post.payload
            step = self._call(update.symbol, lambda: self.strategy.on_order_update(update))
            self._record([step] if step is not None else [])
            return 0
        if post.kind == "clock":
            return self._on_clock(post.payload)
        if post.kind == "sync":
            views = post.payload
            step = self._call("*", lambda: self.strategy.sync(views, self._clock.now()))
            return self._record([step] if step is not None else [])
        return 0

    def new_bars(self, bars: Iterable[Bar]) -> list[Bar]:
        """The bars not seen yet, oldest first (a bar is processed once)."""
        fresh = [
            b
            for b in bars
            if b.t > self.last_bar.get(b.symbol, datetime.min.replace(tzinfo=b.t.tzinfo))
        ]
        return sorted(fresh, key=lambda b: (b.t, b.symbol))

    def _warmup(self, bars: list[Bar]) -> int:
        fresh = self.new_bars(bars)
        if not fresh:
            return 0
        self.strategy.warmup(fresh, self._sessions().on)
        for bar in fresh:
            self.last_bar[bar.symbol] = bar.t
        self._save()
        return len(fresh)

    def _on_bars(self, bars: list[Bar]) -> int:
        fresh = self.new_bars(bars)
        if not fresh:
            return 0
        book = self._sessions()
        steps: list[Step] = []
        for bar in fresh:
            self.last_bar[bar.symbol] = bar.t
            step = self._call(
                bar.symbol,
                lambda b=bar: self.strategy.on_bar(b, session=book.for_bar_start(b.t)),
            )
            if step is not None:
                steps.append(step)
        self._record(steps)
        return len(fresh)

    def _on_clock(self, now: datetime) -> int:
        on_clock = getattr(self.strategy, "on_clock", None)
        if on_clock is None:
            return 0
        session = self._sessions().for_bar_start(now)
        step = self._call("*", lambda: on_clock(now, session))
        return self._record([step] if step is not None else [])

    def _call(self, symbol: str, fn: Callable[[], Step]) -> Step | None:
        try:
            return fn()
        except Exception:
            self.errors += 1
            log.exception("strategy %s failed on %s: no intent for this symbol", self.name, symbol)
            return None

    def _record(self, steps: Sequence[Step]) -> int:
        """Store evaluations and intents, save the snapshot, hand the intents to the router.
        Returns how many intents were produced."""
        now = self._clock.now()
        evaluations = [e for s in steps for e in s.evaluations]
        intents = [i for s in steps for i in s.intents]
        self._ledger.record_evaluations(evaluations, now)
        for evaluation in evaluations:
            if evaluation.decision in ("enter", "exit"):
                log.info(
                    "signal    %-12s %-6s %s: %s",
                    self.name,
                    evaluation.symbol,
                    evaluation.decision,
                    evaluation.reason,
                    extra={
                        "fields": {
                            "STRATEGY": self.name,
                            "SYMBOL": evaluation.symbol,
                            "EVENT": "signal",
                        }
                    },
                )
        now_intents, now_ids = [], []
        for intent in intents:
            if intent.execute == "next_open":
                self._add_next_open(intent, now)
                continue
            row = self._ledger.add_intent(intent, now=now)
            now_intents.append(intent)
            now_ids.append(row.id)
        self._save()
        if now_intents:
            self._router.submit(now_intents, now_ids)
        return len(intents)

    def _add_next_open(self, intent: Any, now: datetime) -> None:
        session = self._sessions().current_or_next(now)
        if session is not None and session.open <= now:
            session = self._sessions().next_after(session)
        if session is None:
            log.error("no next session in the calendar for %s %s", self.name, intent.symbol)
            return
        self._ledger.add_intent(
            intent,
            now=now,
            not_before=session.open + self.execution_delay,
            expires_at=session.close,
        )
        log.info(
            "pending   %-12s %-6s %s %s at %s",
            self.name,
            intent.symbol,
            intent.action,
            intent.leg,
            (session.open + self.execution_delay).isoformat(),
        )

    # -- pending intents (no strategy code: the ledger's rows and the router) -------------

    def due_pending(self) -> tuple[list[Any], list[int], int]:
        """This strategy's pending next-open intents that are due now, and how many expired
        (each with a WARNING line). A sent intent is not pending any more, and the router
        never sends a client_order_id twice, so calling this again is safe."""
        now = self._clock.now()
        due, due_ids, expired = [], [], 0
        for row in self._ledger.intents("pending"):
            if row.intent.strategy != self.name or row.intent.execute != "next_open":
                continue
            if row.expires_at is not None and now >= row.expires_at:
                self._ledger.set_intent_status(
                    row.id, "expired", "session ended before it was sent", now
                )
                log.warning(
                    "expired   %-12s %-6s %s %s: its session ended before it was sent",
                    self.name,
                    row.intent.symbol,
                    row.intent.action,
                    row.intent.leg,
                )
                expired += 1
            elif row.not_before is None or row.not_before <= now:
                due.append(row.intent)
                due_ids.append(row.id)
        return due, due_ids, expired

    async def execute_pending(self) -> tuple[int, int]:
        """Send the due pending intents and wait until the router executed them; returns
        (sent, expired)."""
        due, due_ids, expired = self.due_pending()
        if due:
            await self._router.execute(due, due_ids)
        return len(due), expired
