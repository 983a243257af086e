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

A strategy whose descriptor declares its state kept per symbol (``per_symbol_state``: Bear
Trap, which may watch the whole market) is saved incrementally: before the router sees an
intent, the symbols that decided something (an intent, an evaluation record, an order update)
are written; the symbols whose bars were quiet are written together every
``QUIET_SAVE_EVERY`` of market time, after the router had its turn. A quiet bar only moves
indicators, and the bar feed hands every bar after a symbol's saved last bar to the strategy
again after a restart (as warm-up when it is stale), so the rebuilt state is the same.

The daemon and the backtest build their strategies with no records of skipped bars asked for
(``explain_skips=False``, see ``strategies.api.descriptor.Build``): the ledger keeps the
decisions that matter, not every quiet bar of 10,000 symbols.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from operator import attrgetter
from typing import Any

from magellan_core.clock import Clock
from magellan_core.timeframes import BAR_LENGTH
from magellan_daemon.adapters.bar_batch import BarBatch
from magellan_daemon.execution.ports import IntentRouter
from magellan_daemon.ledger.store import Ledger
from magellan_daemon.runtime.pending import due_next_open, hold_for_next_open
from magellan_daemon.sessions import SessionBook
from magellan_daemon.timefmt import iso, parse_iso
from magellan_daemon.timefmt import session_date as session_day
from strategies.api.model import Bar, HoldingView, Intent, OrderUpdate, Step, Strategy

log = logging.getLogger(__name__)
QUIET_SAVE_EVERY = timedelta(minutes=5)
DECISIONS = frozenset({"enter", "exit"})  # evaluations that decided something
# A streamed bar older than this in market time, that also waited BEHIND_WALL_SECONDS in the
# queue, finds the runner behind the market: it goes in as warm-up (see _behind).
BEHIND_AFTER = timedelta(minutes=2)
BEHIND_WALL_SECONDS = 10.0
_BAR_ORDER = attrgetter("t", "symbol")
TIMEFRAME_LENGTH = BAR_LENGTH  # how long a bar of each timeframe lasts (the one table)


@dataclass(eq=False)
class _Post:
    """One item of a runner's queue; ``done`` completes when it was handled."""

    kind: str  # bars, batch, warmup, clock, update, sync, save
    payload: Any
    done: asyncio.Future[int] | None = field(default=None)
    posted: float = 0.0  # time.monotonic() when a streamed batch was posted


class StrategyRunner:
    """Feeds one strategy and routes what it decides.

    Over 15 public methods because each of its callers gets its own one-line door onto the
    one queue: ``post_*`` for news, their awaited forms for the startup script, state saved
    and restored, and the intents held for the next open."""

    def __init__(
        self,
        *,
        name: str,
        strategy: Strategy,
        symbols: Iterable[str],
        ledger: Ledger,
        router: IntentRouter,
        clock: Clock,
        sessions: Callable[[], SessionBook],
        execution_delay: timedelta = timedelta(0),
        per_symbol_state: bool = False,
        backtest: bool = False,
        behind_wall_seconds: float = BEHIND_WALL_SECONDS,
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
        # The last bar each symbol took in this start's warm-up (never evaluated; not saved):
        # what tells a bar this start's warm-up consumed from one a run before evaluated
        # (``last_bar`` holds both once the state is restored). Kept by ``_warmup`` only,
        # not by the per-bar catch-up of a minute runner behind the stream.
        self.warmed: dict[str, datetime] = {}
        # "SYMBOL@YYYY-MM-DD" of the splits the strategy's state was re-based for (saved
        # with the snapshot, so a restart never re-bases it twice)
        self.rebased: set[str] = set()
        self.errors = 0
        self._per_symbol = per_symbol_state  # the descriptor's: saved a symbol at a time
        self._dirty: set[str] = set()  # per-symbol strategies: changed since their last save
        self._quiet_saved_at: datetime | None = None
        # How often the symbols with quiet bars are saved; None: never by themselves (a
        # backtest, whose in-memory ledger has no restart to rebuild from, asks for that).
        # A backtest's runner never restarts and nobody reads its "why not" of a bar: it
        # stores only the evaluations that decided something, and its state is saved once,
        # at the end (the backtest's own call), not after each call or every few minutes.
        self._backtest = backtest
        self._behind_wall_seconds = behind_wall_seconds
        self._behind_since_bars = 0  # bars taken as warm-up in the current spell behind
        self.bars_behind = 0  # bars taken as warm-up because the runner was behind, in all
        self._quiet_save_every = None if backtest else QUIET_SAVE_EVERY
        self._save_posted = False
        self._submitted = False
        self._working = False

    # -- state ---------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The strategy's snapshot plus the last bar seen per symbol."""
        return {
            "strategy": self.strategy.snapshot(),
            "last_bar": {s: iso(t) for s, t in self.last_bar.items()},
            "rebased": sorted(self.rebased),
        }

    def restore(self, factory: Callable[[dict[str, Any] | None], Strategy]) -> bool:
        """Rebuild the strategy from the ledger's snapshot; False when there is none."""
        saved = self._ledger.load_strategy_state(self.name)
        if not saved:
            return False
        self.strategy = factory(saved["strategy"])
        self.last_bar = {s: parse_iso(t) for s, t in saved.get("last_bar", {}).items()}
        self.rebased = set(saved.get("rebased", ()))
        # Written whole on the first save (the file may hold a one-row snapshot).
        self._dirty.update(saved["strategy"].get("symbols", ()))
        return True

    def save(self, symbols: Iterable[str] | None = None) -> None:
        """Write the state to the ledger: the whole snapshot, or for a per-symbol strategy
        the given symbols (default: every symbol changed since its last save)."""
        now = self._clock.now()
        if not self._per_symbol:
            self._ledger.save_strategy_state(self.name, self.snapshot(), now)
            return
        chosen = set(self._dirty if symbols is None else symbols)
        part = self.strategy.snapshot(symbols=chosen)
        entries = part.pop("symbols")
        header = {
            "strategy": {**part, "symbols": {}},
            "last_bar": {},
            "rebased": sorted(self.rebased),
        }
        self._ledger.strategy_states.save(self.name, header, entries, self.last_bar, now)
        self._dirty -= chosen
        if symbols is None:
            self._quiet_saved_at = now

    @property
    def idle(self) -> bool:
        """Nothing posted is waiting or being handled (a backtest steps time when idle)."""
        return not self._working and self._queue.empty()

    # -- posting (never waits for the strategy) ------------------------------------------

    def post_bars(self, bars: Sequence[Bar]) -> None:
        """Completed bars to evaluate."""
        self._queue.put_nowait(_Post("bars", list(bars)))

    def post_batch(self, batch: BarBatch) -> None:
        """Completed minute bars as columns (the live bar stream), evaluated in one call
        (``_on_batch``)."""
        self._queue.put_nowait(_Post("batch", batch, posted=time.monotonic()))

    def post_update(self, update: OrderUpdate) -> None:
        """News about one of the strategy's own orders."""
        self._queue.put_nowait(_Post("update", update))

    def post_warmup(self, bars: Sequence[Bar]) -> None:
        """History to feed without deciding anything (never waits)."""
        self._queue.put_nowait(_Post("warmup", list(bars)))

    def post_clock(self, now: datetime) -> None:
        """The time alone (time-driven exits of a strategy that has them)."""
        self._queue.put_nowait(_Post("clock", now))

    def evaluate_now(self, bars: Sequence[Bar], now: datetime | None = None) -> bool:
        """Handle ``bars`` (then a clock tick at ``now``) at once, in the caller's turn of
        the loop: what ``run`` does with them, for a caller that steps time itself (a
        backtest), and only while the runner is idle, so nothing posted is overtaken. True
        when intents went to the router (the caller then lets the lanes work)."""
        if not self.idle:
            raise RuntimeError(f"runner {self.name} is busy: post instead")
        self._working = True
        try:
            if bars:
                self._on_bars(list(bars))
            if now is not None:
                self._on_clock(now)
        finally:
            self._working = False
        submitted, self._submitted = self._submitted, False
        return submitted

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

    async def rebase(self, symbol: str, ex_date: date, ratio: float) -> bool:
        """A split of ``ratio`` on ``symbol`` took effect on ``ex_date``: re-base the
        strategy's state (``Strategy.rebase``) once, if it was built on the old scale (no
        bar of the ex-date or later seen). True when it was re-based now."""
        return bool(await self._call_and_wait("rebase", (symbol, ex_date, ratio)))

    async def _call_and_wait(self, kind: str, payload: Any) -> int:
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Post(kind, payload, done))
        return await done

    # -- the worker ----------------------------------------------------------------------

    async def run(self) -> None:
        """Handle posted items forever, one at a time (the daemon supervises this task)."""
        while True:
            self._working = False
            post = await self._queue.get()
            self._working = True
            if post.kind == "save":
                # Let the lanes start on what was just submitted before this long write.
                await asyncio.sleep(0)
            try:
                result = self._handle(post)
            except Exception as exc:
                if post.done is not None and not post.done.done():
                    post.done.set_exception(exc)
                raise
            if post.done is not None and not post.done.done():
                post.done.set_result(result)
            if self._submitted:
                # The lanes send what was just submitted before the next post is evaluated.
                self._submitted = False
                await asyncio.sleep(0)

    def _handle(self, post: _Post) -> int:
        if post.kind == "bars":
            return self._on_bars(post.payload)
        if post.kind == "batch":
            if self._behind(post):
                return self._catch_up(post.payload)
            return self._on_batch(post.payload)
        if post.kind == "warmup":
            return self._warmup(post.payload)
        if post.kind == "update":
            update: OrderUpdate = post.payload
            step = self._call(update.symbol, lambda: self.strategy.on_order_update(update))
            self._record([step] if step is not None else [], changed=(update.symbol,))
            return 0
        if post.kind == "clock":
            return self._on_clock(post.payload)
        if post.kind == "sync":
            views = post.payload
            step = self._call("*", lambda: self.strategy.sync(views, self._clock.now()))
            self._dirty.update(views)
            count = self._record([step] if step is not None else [])
            self.save()
            return count
        if post.kind == "rebase":
            return self._rebase(*post.payload)
        if post.kind == "save":
            self._save_posted = False
            self.save()
        return 0

    def _rebase(self, symbol: str, ex_date: date, ratio: float) -> int:
        key = f"{symbol}@{ex_date.isoformat()}"
        if key in self.rebased:
            return 0
        self.rebased.add(key)
        seen = self.last_bar.get(symbol)
        done = 0
        if seen is None or session_day(seen) < ex_date:
            self._call(symbol, lambda: self.strategy.rebase(symbol, ratio) or Step())
            done = 1
        self._dirty.add(symbol)
        self.save()
        return done

    def new_bars(self, bars: Iterable[Bar]) -> list[Bar]:
        """The bars not seen yet, oldest first (a bar is processed once)."""
        seen = self.last_bar.get
        fresh = [b for b in bars if (last := seen(b.symbol)) is None or b.t > last]
        fresh.sort(key=_BAR_ORDER)
        return fresh

    def _warmup(self, bars: list[Bar]) -> int:
        fresh = self.new_bars(bars)
        if not fresh:
            return 0
        self.strategy.warmup(fresh, self._sessions().on)
        for bar in fresh:
            self.last_bar[bar.symbol] = self.warmed[bar.symbol] = bar.t
        if self._per_symbol:
            self._dirty.update(b.symbol for b in fresh)
        self.save()
        return len(fresh)

    def _on_bars(self, bars: list[Bar]) -> int:
        fresh = self.new_bars(bars)
        if not fresh:
            return 0
        book = self._sessions()
        steps: list[Step] = []
        last_bar, on_bar = self.last_bar, self.strategy.on_bar
        sessions: dict[datetime, Any] = {}  # one lookup per bar time, not per bar
        for bar in fresh:
            t = bar.t
            last_bar[bar.symbol] = t
            session = sessions.get(t)
            if session is None and t not in sessions:
                session = sessions[t] = book.for_bar_start(t)
            try:
                step = on_bar(bar, session=session)
            except Exception:
                self.errors += 1
                log.exception(
                    "strategy %s failed on %s: no intent for this symbol", self.name, bar.symbol
                )
                continue
            if step.intents or step.evaluations:
                steps.append(step)
        if self._per_symbol:
            self._dirty.update(b.symbol for b in fresh)
        self._record(steps)
        return len(fresh)

    # -- the live bar stream's batches (kept apart from ``_on_bars``, which the backtest
    # feeds: the two paths are tuned for different callers) ------------------------------

    def _on_batch(self, batch: BarBatch) -> int:
        """A batch of streamed minute bars in one call: the rows not seen yet, in (time,
        symbol) order as ``new_bars`` gives them, each evaluated once (a row repeated in
        the batch is not evaluated twice). A ``Bar`` is built only for a row that goes to
        the strategy: every strategy's ``on_bar`` reads the whole bar."""
        symbols, times = batch.symbol, batch.t
        seen = self.last_bar.get
        fresh = [
            i
            for i, (s, t) in enumerate(zip(symbols, times, strict=True))
            if (last := seen(s)) is None or t > last
        ]
        if not fresh:
            return 0
        if len(set(times)) == 1:  # the usual burst: one minute, sorted by symbol alone
            fresh.sort(key=symbols.__getitem__)
        else:
            fresh.sort(key=lambda i: (times[i], symbols[i]))
        book = self._sessions()
        steps: list[Step] = []
        last_bar, on_bar, make = self.last_bar, self.strategy.on_bar, batch.bar
        sessions: dict[datetime, Any] = {}  # one lookup per bar time, not per bar
        evaluated = 0
        for i in fresh:
            symbol, t = symbols[i], times[i]
            last = last_bar.get(symbol)
            if last is not None and t <= last:
                continue  # the same bar twice in one batch
            last_bar[symbol] = t
            evaluated += 1
            session = sessions.get(t)
            if session is None and t not in sessions:
                session = sessions[t] = book.for_bar_start(t)
            try:
                step = on_bar(make(i), session=session)
            except Exception:
                self.errors += 1
                log.exception(
                    "strategy %s failed on %s: no intent for this symbol", self.name, symbol
                )
                continue
            if step.intents or step.evaluations:
                steps.append(step)
        if self._per_symbol:
            self._dirty.update(symbols[i] for i in fresh)
        self._record(steps)
        return evaluated

    def _behind(self, post: _Post) -> bool:
        """Whether a streamed batch is too old to decide on: its bars ended over
        ``BEHIND_AFTER`` of market time ago and it waited over ``behind_wall_seconds`` of
        wall time in this queue (both: at test speed a moment's wait is minutes of market
        time). A runner that falls behind (a CPU spike, a burst bigger than it can evaluate
        in a minute) then takes the backlog in as warm-up, which is cheaper, until it is
        current again: no entry on a crash minutes old, and the clock's exits and the
        order news queued behind the backlog come sooner."""
        batch: BarBatch = post.payload
        if not len(batch):
            return False
        lag = self._clock.now() - (max(batch.t) + TIMEFRAME_LENGTH["1Min"])
        waited = time.monotonic() - post.posted
        behind = lag > BEHIND_AFTER and waited > self._behind_wall_seconds
        if behind and not self._behind_since_bars:
            log.warning(
                "strategy %s is behind the market: bars %d s old waited %.1f s in its "
                "queue; streamed bars go in as warm-up (no decisions) until it catches up",
                self.name,
                lag.total_seconds(),
                waited,
                extra={"fields": {"STRATEGY": self.name, "EVENT": "runner_behind"}},
            )
        elif not behind and self._behind_since_bars:
            log.info(
                "strategy %s caught up: %d bars went in as warm-up while it was behind",
                self.name,
                self._behind_since_bars,
            )
            self._behind_since_bars = 0
        return behind

    def _catch_up(self, batch: BarBatch) -> int:
        """A batch of a runner behind the market: indicators and session state only (the
        bars are saved with the quiet symbols, not now: a save is what a backlog cannot
        afford)."""
        bars = self.new_bars(batch.bar(i) for i in range(len(batch)))
        if not bars:
            return 0
        self.strategy.warmup(bars, self._sessions().on)
        for bar in bars:  # the minute stream's backlog: no daily signal asks ``warmed``
            self.last_bar[bar.symbol] = bar.t
        if self._per_symbol:
            self._dirty.update(b.symbol for b in bars)
        self.bars_behind += len(bars)
        self._behind_since_bars += len(bars)
        return 0

    def _on_clock(self, now: datetime) -> int:
        if not self.strategy.clock_due():
            return 0  # nothing the time alone could exit (the usual tick of a backtest)
        session = self._sessions().for_bar_start(now)
        step = self._call("*", lambda: self.strategy.on_clock(now, session))
        if step is None or not (step.intents or step.evaluations):
            return 0  # the usual tick: nothing held is due (nothing to record or save)
        return self._record([step])

    def _call(self, symbol: str, fn: Callable[[], Step]) -> Step | None:
        try:
            return fn()
        except Exception:
            self.errors += 1
            log.exception("strategy %s failed on %s: no intent for this symbol", self.name, symbol)
            return None

    def _record(self, steps: Sequence[Step], changed: Iterable[str] = ()) -> int:
        """Store evaluations and intents, save the state (see the module docstring), hand
        the intents to the router. Returns how many intents were produced."""
        now = self._clock.now()
        if not steps and not changed and self._per_symbol:
            self._save_decided(now, set())  # a quiet call: only the interval save is due
            return 0
        evaluations = [e for s in steps for e in s.evaluations]
        if self._backtest:
            evaluations = [e for e in evaluations if e.decision in DECISIONS]
        intents = [i for s in steps for i in s.intents]
        if evaluations:
            self._ledger.record_evaluations(evaluations, now)
        for evaluation in evaluations:
            if evaluation.decision in DECISIONS:
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
                hold_for_next_open(
                    self._ledger, self._sessions(), self.name, intent, now, self.execution_delay
                )
                continue
            row = self._ledger.add_intent(intent, now=now)
            now_intents.append(intent)
            now_ids.append(row.id)
        self._save_decided(
            now, {*changed, *(e.symbol for e in evaluations), *(i.symbol for i in intents)}
        )
        if now_intents:
            self._router.submit(now_intents, now_ids)
            self._submitted = True
        return len(intents)

    def _save_decided(self, now: datetime, decided: set[str]) -> None:
        """Before the router: the symbols that decided (a per-symbol strategy) or the whole
        snapshot; the quiet symbols later, in a save of their own (see the module doc)."""
        if self._backtest:
            return
        if not self._per_symbol:
            self.save()
            return
        decided.discard("*")
        if decided:
            self.save(decided)
        every = self._quiet_save_every
        if every is None:
            return
        if self._quiet_saved_at is None:
            self._quiet_saved_at = now
        elif self._dirty and not self._save_posted and now - self._quiet_saved_at >= every:
            self._save_posted = True
            self._queue.put_nowait(_Post("save", None))

    # -- pending intents (no strategy code: the ledger's rows and the router) -------------

    def due_pending(self) -> tuple[list[Intent], list[int], int]:
        """This strategy's pending next-open intents that are due now, and how many expired
        (``pending.due_next_open``: safe to call again)."""
        return due_next_open(self._ledger, self.name, self._clock.now())

    async def execute_pending(self) -> tuple[int, int]:
        """Send the due pending intents and wait until the router executed them; returns
        (sent, expired)."""
        due, due_ids, expired = self.due_pending()
        if due:
            await self._router.execute(due, due_ids)
        return len(due), expired
