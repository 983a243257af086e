"""Replay one strategy over recorded bars with a minimal simulated broker (no account).

Used by ``magellan signals``. One symbol at a time (the strategy's state per symbol is
independent here: no account-level gate applies), in bar order:

1. market orders sent on an earlier bar fill at this bar's open: ``execute="now"`` at the
   next tradable bar of the symbol, ``execute="next_open"`` at the first tradable bar of a
   later session. Entries are sized with ``shares_for(sizing, equity)``; a size of 0 is
   reported ("size 0") and answered with a ``rejected`` update instead of a fill. A sell
   never fills more than the simulated position (the rest is reported as ``canceled``);
2. a resting protective stop (``place_stop``/``replace_stop``/``cancel_stop``) fills when the
   bar's low <= its stop price, at ``min(open, stop)``, as an ``OrderUpdate`` with leg
   ``PROTECTIVE_STOP_LEG`` (reported as an exit row);
3. the bar goes to ``on_bar``; buy/sell intents are queued, stop intents applied at once.

"Tradable" bar: a daily bar whose New York date is a session; an intraday bar starting
inside ``[open, close)`` of its session. Bars before ``start`` warm the indicators up.

Splits (``splits``, from the corporate-actions file): the strategy sees the history as the
daemon would on that day, split-adjusted *as of the bar being processed*, never as of the
end of the data (that would scale every earlier bar by splits still in the future). The
warm-up bars are adjusted as of the first bar processed; when the replay reaches a split's
ex-date, before that date's first bar, the strategy's state is re-based
(``Strategy.rebase``, the daemon's own step) and so are the replay's position, resting stop
and queued orders (shares times the ratio, rounded down; prices divided), as the broker
re-bases the position and the daemon re-places the stop at the adjusted price.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from dataclasses import replace as replace_fields
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, TextIO

from magellan_core.corporate_actions import SplitTable
from magellan_core.matching import stop_start
from magellan_daemon.timefmt import NEW_YORK
from strategies.api.model import (
    PROTECTIVE_STOP_LEG,
    STOP_ACTIONS,
    Bar,
    Intent,
    OrderUpdate,
    Step,
    Strategy,
)
from strategies.api.session import Session
from strategies.lib.rebase import shares_after
from strategies.lib.sizing import shares_for

CSV_COLUMNS = ("strategy", "symbol", "signal_time", "action", "price", "reason")


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """One CSV row: an entry or exit decision."""

    strategy: str
    symbol: str
    signal_time: datetime
    action: str  # "enter" | "exit"
    price: float
    reason: str

    def row(self) -> tuple[str, ...]:
        """The row in ``CSV_COLUMNS`` order."""
        t = self.signal_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return (self.strategy, self.symbol, t, self.action, repr(self.price), self.reason)


@dataclass(slots=True)
class RestingStop:
    """The simulated protective stop order of one symbol."""

    signal_time: datetime
    qty: int
    stop_price: float


@dataclass(slots=True)
class QueuedOrder:
    """A market order waiting for its fill bar."""

    intent: Intent
    qty: int
    after_session: date | None  # next_open: fill only in a session after this one


@dataclass(slots=True)
class ReplayStats:
    """Counts for the summary line."""

    bars: int = 0
    symbols: int = 0
    decisions: int = 0
    entries: int = 0
    exits: int = 0
    splits: int = 0  # ex-dates the replay re-based a strategy at
    per_symbol: dict[str, int] = field(default_factory=dict)


class SessionLookup:
    """Date -> ``strategies.api.session.Session``, cached (from any calendar with ``session``)."""

    def __init__(self, calendar: Any) -> None:
        self._calendar = calendar
        self._cache: dict[date, Session | None] = {}

    def __call__(self, day: date) -> Session | None:
        """The session on ``day`` or None."""
        if day not in self._cache:
            s = self._calendar.session(day)
            self._cache[day] = (
                None if s is None else Session(date=s.date, open=s.open, close=s.close)
            )
        return self._cache[day]


class Replay:
    """Drive one strategy over bars, simulate fills, collect decisions."""

    def __init__(
        self,
        strategy: Strategy,
        sessions: Callable[[date], Session | None],
        *,
        equity: float,
        start: date | None = None,
        end: date | None = None,
        splits: SplitTable | None = None,
    ) -> None:
        self.strategy = strategy
        self.splits = splits if splits else None
        self.sessions = sessions
        self.equity = equity
        self.start = start
        self.end = end
        self.daily = strategy.timeframe == "1Day"
        self.stats = ReplayStats()
        self._queue: list[QueuedOrder] = []
        self._stop: RestingStop | None = None
        self._held = 0
        self._ny_day_cache: dict[int, date] = {}

    def run_symbol(self, symbol: str, bars: Iterable[Bar]) -> Iterator[Decision]:
        """Replay one symbol's bars (ascending); yield its decisions as they happen."""
        self._queue, self._stop, self._held = [], None, 0
        self.stats.symbols += 1
        count = 0
        history: list[Bar] = []
        scale_day: date | None = None  # the date whose share scale the strategy's state is on
        for bar in bars:
            day = self._ny_date(bar.t)
            if self.start is not None and day < self.start:
                history.append(bar)
                continue
            if history:
                self.strategy.warmup(self._adjusted(history, day), self.sessions)
                history = []
            if self.end is not None and day > self.end:
                break
            if scale_day is not None and day > scale_day:
                self._cross_splits(symbol, scale_day, day)
            scale_day = day
            count += 1
            yield from self._step(bar, day)
        if history:
            last = self._ny_date(history[-1].t)
            self.strategy.warmup(self._adjusted(history, last), self.sessions)
        self.stats.bars += count
        self.stats.per_symbol[symbol] = count

    # -- splits -----------------------------------------------------------------------------

    def _adjusted(self, bars: list[Bar], as_of: date) -> list[Bar]:
        """``bars`` split-adjusted as of ``as_of`` (prices divided, volumes multiplied)."""
        if self.splits is None or not bars or not self.splits.ex_dates(bars[0].symbol):
            return bars
        out = []
        for bar in bars:
            factor = self.splits.factor(bar.symbol, self._ny_date(bar.t), as_of)
            out.append(bar if factor == 1 else adjusted_bar(bar, factor))
        return out

    def _cross_splits(self, symbol: str, before: date, day: date) -> None:
        """The splits with ex-date in ``(before, day]`` take effect before ``day``'s bars."""
        if self.splits is None:
            return
        ratio = self.splits.factor(symbol, before, day)
        if ratio == 1:
            return
        r = float(ratio)
        self.stats.splits += 1
        self.strategy.rebase(symbol, r)
        self._held = shares_after(self._held, r)
        stop = self._stop
        if stop is not None:
            stop.qty = shares_after(stop.qty, r)
            stop.stop_price /= r
            if stop.qty <= 0:
                self._stop = None
        for order in self._queue:
            order.qty = shares_after(order.qty, r)

    # -- one bar ----------------------------------------------------------------------------

    def _step(self, bar: Bar, day: date) -> Iterator[Decision]:
        session = self.sessions(day)
        if self._tradable(bar, session):
            assert session is not None
            yield from self._fill_queued(bar, session)
            yield from self._check_stop(bar)
        step = self.strategy.on_bar(bar, session=session)
        yield from self._handle(step, bar, session)

    def _tradable(self, bar: Bar, session: Session | None) -> bool:
        if session is None:
            return False
        return self.daily or session.open <= bar.t < session.close

    def _fill_queued(self, bar: Bar, session: Session) -> Iterator[Decision]:
        if not self._queue:
            return
        due: list[QueuedOrder] = []
        waiting: list[QueuedOrder] = []
        for order in self._queue:
            ready = order.after_session is None or session.date > order.after_session
            (due if ready else waiting).append(order)
        self._queue = waiting
        for order in due:
            yield from self._fill(order, bar)

    def _fill(self, order: QueuedOrder, bar: Bar) -> Iterator[Decision]:
        intent = order.intent
        qty = order.qty
        side = "buy" if intent.action == "buy" else "sell"
        if side == "sell":
            qty = min(qty, self._held)
        if qty <= 0:
            yield from self._update(intent, side, "canceled", bar.t, 0, None, bar)
            return
        self._held += qty if side == "buy" else -qty
        yield from self._update(intent, side, "fill", bar.t, qty, bar.open, bar)

    def _check_stop(self, bar: Bar) -> Iterator[Decision]:
        stop = self._stop
        if stop is None or stop.qty <= 0:
            return
        # the simulator's rule: touched at the low, filled at the open if it gapped through
        price = stop_start(False, stop.stop_price, bar)
        if price is None:
            return
        self._stop = None
        qty = min(stop.qty, self._held)
        if qty <= 0:
            return
        self._held -= qty
        yield self._decision(
            bar.symbol,
            bar.t,
            "exit",
            bar.close,
            f"stop: resting stop at {stop.stop_price:.4f} filled {qty} @ {price:.4f}",
        )
        update = OrderUpdate(
            strategy=self.strategy.name,
            symbol=bar.symbol,
            leg=PROTECTIVE_STOP_LEG,
            signal_time=stop.signal_time,
            side="sell",
            kind="fill",
            time=bar.t,
            qty=qty,
            price=price,
            filled_qty=qty,
        )
        yield from self._handle(self.strategy.on_order_update(update), bar, None)

    def _update(
        self,
        intent: Intent,
        side: str,
        kind: str,
        when: datetime,
        qty: int,
        price: float | None,
        bar: Bar,
    ) -> Iterator[Decision]:
        update = OrderUpdate(
            strategy=self.strategy.name,
            symbol=intent.symbol,
            leg=intent.leg,
            signal_time=intent.signal_time,
            side=side,  # type: ignore[arg-type]
            kind=kind,  # type: ignore[arg-type]
            time=when,
            qty=qty,
            price=price,
            filled_qty=qty,
        )
        yield from self._handle(self.strategy.on_order_update(update), bar, None)

    # -- intents ----------------------------------------------------------------------------

    def _handle(self, step: Step, bar: Bar, session: Session | None) -> Iterator[Decision]:
        for intent in step.intents:
            if intent.action in STOP_ACTIONS:
                yield from self._apply_stop(intent, bar)
            else:
                yield from self._queue_order(intent, bar, session)

    def _apply_stop(self, intent: Intent, bar: Bar) -> Iterator[Decision]:
        """Rest, resize or cancel the stop at once, and report what rests, as the router does
        (a stop never rests for more than the shares held)."""
        if intent.action == "cancel_stop":
            self._stop = None
        elif intent.qty is not None and intent.stop_price is not None:
            qty = min(intent.qty, self._held)
            self._stop = (
                RestingStop(signal_time=intent.signal_time, qty=qty, stop_price=intent.stop_price)
                if qty > 0
                else None
            )
        stop = self._stop
        report = OrderUpdate(
            strategy=self.strategy.name,
            symbol=intent.symbol,
            leg=PROTECTIVE_STOP_LEG,
            signal_time=intent.signal_time if stop is None else stop.signal_time,
            side="sell",
            kind="stop",
            time=bar.t,
            qty=0 if stop is None else stop.qty,
            price=None if stop is None else stop.stop_price,
        )
        yield from self._handle(self.strategy.on_order_update(report), bar, None)

    def _queue_order(self, intent: Intent, bar: Bar, session: Session | None) -> Iterator[Decision]:
        entry = intent.action == "buy"
        reason = (
            intent.reason
            if intent.reason.startswith(intent.leg)
            else (f"{intent.leg}: {intent.reason}")
        )
        if entry:
            qty = shares_for(intent.sizing, self.equity) if intent.sizing else (intent.qty or 0)
        else:
            qty = intent.qty or 0
        if qty <= 0:
            reason = f"{reason} (size 0: not filled)"
        yield self._decision(
            intent.symbol, intent.signal_time, "enter" if entry else "exit", bar.close, reason
        )
        if qty <= 0:
            side = "buy" if entry else "sell"
            yield from self._update(intent, side, "rejected", bar.t, 0, None, bar)
            return
        after = None
        if intent.execute == "next_open":
            after = session.date if session is not None else self._ny_date(bar.t)
        self._queue.append(QueuedOrder(intent=intent, qty=qty, after_session=after))

    def _decision(
        self, symbol: str, signal_time: datetime, action: str, price: float, reason: str
    ) -> Decision:
        self.stats.decisions += 1
        if action == "enter":
            self.stats.entries += 1
        else:
            self.stats.exits += 1
        return Decision(
            strategy=self.strategy.name,
            symbol=symbol,
            signal_time=signal_time,
            action=action,
            price=price,
            reason=reason,
        )

    def _ny_date(self, t: datetime) -> date:
        # Bars share few distinct hours: cache the New York date per UTC hour.
        key = t.toordinal() * 24 + t.hour
        day = self._ny_day_cache.get(key)
        if day is None:
            day = self._ny_day_cache[key] = t.astimezone(NEW_YORK).date()
        return day


def adjusted_bar(bar: Bar, factor: Decimal) -> Bar:
    """A raw bar on a later share scale: prices divided by ``factor``, volume multiplied."""
    f = float(factor)
    return replace_fields(
        bar,
        open=bar.open / f,
        high=bar.high / f,
        low=bar.low / f,
        close=bar.close / f,
        volume=bar.volume * f,
    )


def write_decisions(out: TextIO, decisions: Iterable[Decision]) -> None:
    """Write the CSV header and one row per decision."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for decision in decisions:
        writer.writerow(decision.row())
