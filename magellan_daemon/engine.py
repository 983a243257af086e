"""One strategy inside the daemon: bars in, evaluations and intents recorded, intents routed.

The runner is the only caller of its (pure) strategy. Every call goes through ``_call``,
which catches a strategy exception, logs strategy and symbol, and turns it into "no intent
for this symbol": one bad bar never stops the others. After each call the evaluations, the
intents and the strategy's snapshot are written to the ledger before anything is sent, so a
restart rebuilds the strategy exactly and a pending intent is never lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from magellan_daemon.clock import Clock
from magellan_daemon.ledger.store import Ledger, iso, parse_iso
from magellan_daemon.router import OrderRouter
from magellan_daemon.sessions import SessionBook
from strategies.model import Bar, OrderUpdate, Step

log = logging.getLogger(__name__)
TIMEFRAME_LENGTH = {  # how long a bar of each timeframe lasts
    "1Min": timedelta(minutes=1),
    "1Hour": timedelta(hours=1),
    "1Day": timedelta(days=1),
}


class StrategyRunner:
    """Feeds one strategy and executes what it decides."""

    def __init__(
        self,
        *,
        name: str,
        strategy: Any,
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
        self._lock = asyncio.Lock()
        self.last_bar: dict[str, datetime] = {}
        self.bars_seen = 0
        self.errors = 0

    # -- state ---------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The strategy's snapshot plus the last bar seen per symbol."""
        return {
            "strategy": self.strategy.snapshot(),
            "last_bar": {s: iso(t) for s, t in self.last_bar.items()},
        }

    def restore(self, factory: Callable[[dict[str, Any] | None], Any]) -> bool:
        """Rebuild the strategy from the ledger's snapshot; False when there is none."""
        saved = self._ledger.load_strategy_state(self.name)
        if not saved:
            return False
        self.strategy = factory(saved["strategy"])
        self.last_bar = {s: parse_iso(t) for s, t in saved.get("last_bar", {}).items()}
        return True

    def _save(self) -> None:
        self._ledger.save_strategy_state(self.name, self.snapshot(), self._clock.now())

    # -- feeding -------------------------------------------------------------------------

    def new_bars(self, bars: Iterable[Bar]) -> list[Bar]:
        """The bars not seen yet, oldest first (a bar is processed once)."""
        fresh = [
            b
            for b in bars
            if b.t > self.last_bar.get(b.symbol, datetime.min.replace(tzinfo=b.t.tzinfo))
        ]
        return sorted(fresh, key=lambda b: (b.t, b.symbol))

    async def warmup(self, bars: Iterable[Bar]) -> int:
        """Feed history without producing intents; returns how many bars were new."""
        fresh = self.new_bars(bars)
        if not fresh:
            return 0
        book = self._sessions()
        async with self._lock:
            self.strategy.warmup(fresh, book.on)
            for bar in fresh:
                self.last_bar[bar.symbol] = bar.t
            self._save()
        return len(fresh)

    async def on_bars(self, bars: Sequence[Bar]) -> None:
        """Evaluate completed bars; record everything; route the intents."""
        fresh = self.new_bars(bars)
        if not fresh:
            return
        book = self._sessions()
        steps: list[Step] = []
        async with self._lock:
            for bar in fresh:
                self.last_bar[bar.symbol] = bar.t
                self.bars_seen += 1
                step = self._call(
                    bar.symbol,
                    lambda b=bar: self.strategy.on_bar(b, session=book.for_bar_start(b.t)),
                )
                if step is not None:
                    steps.append(step)
        await self._handle(steps)

    async def on_clock(self) -> None:
        """Let a strategy that has time-driven exits act on the time alone."""
        on_clock = getattr(self.strategy, "on_clock", None)
        if on_clock is None:
            return
        now = self._clock.now()
        session = self._sessions().for_bar_start(now)
        async with self._lock:
            step = self._call("*", lambda: on_clock(now, session))
        await self._handle([step] if step is not None else [])

    async def on_order_update(self, update: OrderUpdate) -> None:
        """Tell the strategy about its own order; route what it decides."""
        async with self._lock:
            step = self._call(update.symbol, lambda: self.strategy.on_order_update(update))
        await self._handle([step] if step is not None else [])

    def _call(self, symbol: str, fn: Callable[[], Step]) -> Step | None:
        try:
            return fn()
        except Exception:
            self.errors += 1
            log.exception("strategy %s failed on %s: no intent for this symbol", self.name, symbol)
            return None

    async def _handle(self, steps: Sequence[Step]) -> None:
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
                session = self._sessions().current_or_next(now)
                if session is not None and session.open <= now:
                    session = self._sessions().next_after(session)
                if session is None:
                    log.error("no next session in the calendar for %s %s", self.name, intent.symbol)
                    continue
                row = self._ledger.add_intent(
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
                continue
            row = self._ledger.add_intent(intent, now=now)
            now_intents.append(intent)
            now_ids.append(row.id)
        self._save()
        if now_intents:
            await self._router.execute(now_intents, now_ids)

    async def execute_pending(self) -> tuple[int, int]:
        """Send this strategy's pending intents that are due; expire the stale ones.

        Returns (sent, expired). Safe to call again: a sent intent is not pending anymore,
        and the router never sends a client_order_id twice.
        """
        now = self._clock.now()
        due, due_ids, expired = [], [], 0
        for row in self._ledger.intents("pending"):
            if row.intent.strategy != self.name:
                continue
            if row.expires_at is not None and now >= row.expires_at:
                self._ledger.set_intent_status(
                    row.id, "expired", "session ended before it was sent", now
                )
                log.warning(
                    "expired   %-12s %-6s %s %s",
                    self.name,
                    row.intent.symbol,
                    row.intent.action,
                    row.intent.leg,
                )
                expired += 1
            elif row.not_before is None or row.not_before <= now:
                due.append(row.intent)
                due_ids.append(row.id)
        if due:
            await self._router.execute(due, due_ids)
        return len(due), expired
