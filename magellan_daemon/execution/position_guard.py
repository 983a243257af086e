"""The position guard: the daemon's own check that no position is left unprotected or held
past its strategy's horizon, whatever the broker refused and whatever a strategy believes.

A strategy protects its own positions (Bear Trap re-places a missing stop at the next bar and
decides a refused exit again), but a strategy can be wrong about what rests at the broker,
and a run of refusals can outlast its retries. The guard owns the outcome instead of the
intent: from the ledger's attribution (shares held per strategy and symbol, the orders still
working) it checks, at every minute and after every order event, that

- each position of a strategy with a protective-stop rule is under a working stop or a
  working exit (or gets one within ``grace``, one bar: the strategy's own retry comes first).
  Past that the position is UNPROTECTED: an ERROR once, the gauge
  ``magellan_unprotected_positions``, and the guard acts itself: it places the stop again at
  the last stop price the strategy asked for, and when that does not rest (or there is no
  price) it sells at market; its attempts back off (5 s, 10 s, 20 s... never more than a bar
  apart);
- each position of an intraday strategy is flat by the close: from ``close - margin`` a
  position with no working exit for ``grace`` is flattened (open orders cancelled, market
  sell), again and again with backoff until the close. Anything still held at the close is an
  ERROR, shows in the health state, ``magellan status`` and the metrics, and the next
  session's opening auction exits it (a market sell with ``time_in_force="opg"``, sent from
  19:00 ET, when Alpaca accepts auction orders). Before that ERROR the guard asks the broker
  once (``confirm``: the open-order poll): an exit that filled in the last minute, or whose
  fill news the stream has not delivered yet, is a fill the ledger has yet to book, not a
  position held overnight.

The guard never calls the broker: every order goes through the router's lanes, in the
strategy's name, so the strategy hears every report (a stop the guard placed is the stop the
strategy adopts) and the router's sell limits (never more than held, never against a stop
that holds the shares) apply as to any exit. ``check`` is synchronous and cheap (ledger
reads for the positions held), so the live daemon and the backtest call it the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta

from magellan_core.clock import Clock
from magellan_daemon.execution.ports import GuardRouter
from magellan_daemon.ledger.store import Ledger, OrderRow
from magellan_daemon.sessions import SessionBook
from magellan_daemon.timefmt import NEW_YORK
from strategies.api.model import PROTECTIVE_STOP_LEG, Intent

log = logging.getLogger(__name__)
GRACE = timedelta(seconds=65)  # one bar, and the minute clock's offset after it
FIRST_BACKOFF = timedelta(seconds=5)
MAX_BACKOFF = timedelta(seconds=60)  # a retry is always due within one bar
AUCTION_ORDERS_FROM = time(19, 0)  # Alpaca takes opg orders from 19:00 to 09:28 ET
AUCTION_ORDERS_UNTIL = time(9, 28)
GUARD_EXIT_LEG = "guard_exit"
CLOSE_FLATTEN_LEG = "guard_flatten"
AUCTION_EXIT_LEG = "opg_exit"


@dataclass(frozen=True, slots=True, kw_only=True)
class GuardedStrategy:
    """What the guard needs to know of one strategy (from its descriptor)."""

    name: str
    protective_stop: bool
    intraday: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Coverage:
    """One position against the orders that work for it."""

    held: int
    stop: int  # shares under a working protective stop
    exits: int  # shares under working sells other than the stop

    @property
    def protected(self) -> bool:
        return self.stop + self.exits >= self.held

    @property
    def exiting(self) -> bool:
        return self.exits >= self.held


@dataclass(slots=True)
class _Watch:
    """The guard's memory of one (strategy, symbol) position."""

    uncovered_since: datetime | None = None
    reported: bool = False  # the ERROR of this spell was logged
    attempts: int = 0
    next_try: datetime | None = None
    in_flight: list[asyncio.Future[object]] = field(default_factory=list)
    past_close: str | None = None  # the session date it outlived, once reported

    def busy(self) -> bool:
        self.in_flight = [f for f in self.in_flight if not f.done()]
        return bool(self.in_flight)

    def calm(self) -> None:
        self.uncovered_since = None
        self.reported = False
        self.attempts = 0
        self.next_try = None


class PositionGuard:
    """See the module docstring."""

    def __init__(
        self,
        *,
        ledger: Ledger,
        router: GuardRouter,
        clock: Clock,
        sessions: Callable[[], SessionBook],
        strategies: Iterable[GuardedStrategy],
        close_margin: timedelta,
        grace: timedelta = GRACE,
        confirm: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self._ledger = ledger
        self._router = router
        self._clock = clock
        self._sessions = sessions
        self._strategies = [s for s in strategies if s.protective_stop or s.intraday]
        self._margin = close_margin
        self._grace = grace
        self._watches: dict[tuple[str, str], _Watch] = {}
        self._confirm = confirm  # asks the broker what the ledger may not know yet
        self._confirmations: dict[str, asyncio.Future[object]] = {}  # by session date
        self._stopped = False
        self.unprotected: dict[tuple[str, str], int] = {}  # shares, past the grace
        self.held_past_close: dict[tuple[str, str], int] = {}
        self.actions = 0  # orders the guard itself asked for

    @property
    def watching(self) -> bool:
        """A position was guarded at the last check (its watch is kept until a check sees it
        flat): a caller that skips checks while nothing is held must not skip this one."""
        return bool(self._watches)

    # -- the check -------------------------------------------------------------------

    def check(self) -> None:
        """Look at every guarded position now and act where the rules say so."""
        now = self._clock.now()
        book = self._sessions()
        session = book.current_or_next(now)
        in_session = session is not None and session.open <= now < session.close
        seen: set[tuple[str, str]] = set()
        for strategy in self._strategies:
            for position in self._ledger.positions(strategy.name):
                held = int(position.qty)
                if held <= 0:
                    continue
                key = (strategy.name, position.symbol)
                seen.add(key)
                watch = self._watches.setdefault(key, _Watch())
                coverage = self._coverage(strategy.name, position.symbol, held)
                if in_session:
                    assert session is not None
                    watch.past_close = None
                    self.held_past_close.pop(key, None)
                    self._in_session(strategy, key, watch, coverage, now, session.close)
                else:
                    self.unprotected.pop(key, None)
                    watch.calm()
                    if strategy.intraday:
                        self._outside_session(key, watch, coverage, now, book)
        for key in set(self._watches) - seen:  # flat now: nothing to guard
            del self._watches[key]
            self.unprotected.pop(key, None)
            self.held_past_close.pop(key, None)

    def _coverage(self, strategy: str, symbol: str, held: int) -> Coverage:
        working = self._ledger.orders(strategy=strategy, symbol=symbol, open_only=True)
        sells = [o for o in working if o.side == "sell"]
        stop = max((_remaining(o) for o in sells if o.leg == PROTECTIVE_STOP_LEG), default=0)
        exits = sum(_remaining(o) for o in sells if o.leg != PROTECTIVE_STOP_LEG)
        # A sell still in its lane (waiting for a stop's cancel to be confirmed) is an exit
        # on its way, not a missing one.
        exits += self._router.selling(strategy, symbol)
        return Coverage(held=held, stop=stop, exits=exits)

    def _in_session(
        self,
        strategy: GuardedStrategy,
        key: tuple[str, str],
        watch: _Watch,
        coverage: Coverage,
        now: datetime,
        close: datetime,
    ) -> None:
        closing = strategy.intraday and now >= close - self._margin
        at_risk = (closing and not coverage.exiting) or (
            strategy.protective_stop and not coverage.protected
        )
        if not at_risk:
            if watch.uncovered_since is not None and watch.reported:
                log.warning("guard     %s %s: protected again", *key)
            self.unprotected.pop(key, None)
            watch.calm()
            return
        if watch.uncovered_since is None:
            watch.uncovered_since = now
        if now - watch.uncovered_since < self._grace:
            return  # the strategy's own retry comes first
        if not coverage.protected:
            self.unprotected[key] = coverage.held - coverage.stop - coverage.exits
            if not watch.reported:
                watch.reported = True
                log.error(
                    "UNPROTECTED %s %s: %d shares held, %d under a stop, %d under exits, "
                    "for %d s: the position guard acts",
                    key[0],
                    key[1],
                    coverage.held,
                    coverage.stop,
                    coverage.exits,
                    (now - watch.uncovered_since).total_seconds(),
                    extra={
                        "fields": {"STRATEGY": key[0], "SYMBOL": key[1], "EVENT": "unprotected"}
                    },
                )
        if watch.busy() or (watch.next_try is not None and now < watch.next_try):
            return
        if closing:
            why = f"{self._margin} before the close, no exit working"
            self._flatten(key, watch, now, why, CLOSE_FLATTEN_LEG)
        else:
            self._protect(key, watch, coverage, now)

    def _protect(self, key: tuple[str, str], watch: _Watch, coverage: Coverage, now: datetime):
        last_stop = self._ledger.last_order_of_leg(key[0], key[1], PROTECTIVE_STOP_LEG)
        if last_stop is None or last_stop.stop_price is None or watch.attempts > 0:
            # No stop would rest (refused again, or no level known): out at market, as one
            # sell (the flatten cancels a strategy's sell still working for part of the
            # shares: two sells working for one position would compete for the same shares).
            self._flatten(key, watch, now, "no stop rests, exit at market", GUARD_EXIT_LEG)
            return
        reason = f"position guard: stop again at {last_stop.stop_price} for {coverage.held}"
        intent = Intent(
            strategy=key[0],
            symbol=key[1],
            action="place_stop",
            leg=PROTECTIVE_STOP_LEG,
            signal_time=last_stop.signal_time,
            reason=reason,
            qty=coverage.held,
            stop_price=float(last_stop.stop_price),
        )
        log.warning("guard     %s %s: %s", key[0], key[1], reason)
        self._acted(watch, now, self._router.submit([intent]))

    def _flatten(
        self, key: tuple[str, str], watch: _Watch, now: datetime, why: str, leg: str
    ) -> None:
        log.warning("guard     %s %s: flatten (%s)", key[0], key[1], why)
        self._acted(watch, now, [self._router.flatten_symbol(key[0], key[1], leg)])

    def _acted(self, watch: _Watch, now: datetime, futures: list[asyncio.Future[object]]) -> None:
        self.actions += 1
        watch.in_flight.extend(futures)
        backoff = min(MAX_BACKOFF, FIRST_BACKOFF * 2**watch.attempts)
        watch.attempts += 1
        watch.next_try = now + backoff

    # -- after the close -------------------------------------------------------------

    def _outside_session(
        self,
        key: tuple[str, str],
        watch: _Watch,
        coverage: Coverage,
        now: datetime,
        book: SessionBook,
    ) -> None:
        last = book.previous(now)
        if last is None:
            return
        if watch.past_close != str(last.date) and not self._confirmed(str(last.date)):
            return  # the broker's answer comes first (a fill not booked yet is no position)
        self.held_past_close[key] = coverage.held
        if watch.past_close != str(last.date):
            watch.past_close = str(last.date)
            log.error(
                "HELD PAST THE CLOSE %s %s: %d shares of an intraday strategy outlived the "
                "session of %s; the next opening auction exits them",
                key[0],
                key[1],
                coverage.held,
                last.date,
                extra={"fields": {"STRATEGY": key[0], "SYMBOL": key[1], "EVENT": "past_close"}},
            )
        if coverage.exiting or watch.busy() or not _auction_orders_taken(now):
            return
        auction = [o for o in self._working_sells(key) if o.time_in_force == "opg"]
        if sum(_remaining(o) for o in auction) >= coverage.held:
            return
        # No auction exit, or one for fewer shares than held now (sent before a split the
        # ledger has since applied): the flatten cancels it and sells every share.
        log.warning("guard     %s %s: sell %d at the opening auction", *key, coverage.held)
        self.actions += 1
        watch.in_flight.append(
            self._router.flatten_symbol(key[0], key[1], AUCTION_EXIT_LEG, time_in_force="opg")
        )

    def _confirmed(self, session: str) -> bool:
        """Whether the broker was asked, after the close of ``session``, what the ledger may
        not know yet, and answered (once per close, for every position still held)."""
        if self._confirm is None:
            return True
        if self._stopped:
            return False  # the daemon is stopping: no new look, nothing called held
        asked = self._confirmations.get(session)
        if asked is None or asked.cancelled():  # a look cut short answered nothing: ask again
            asked = asyncio.ensure_future(self._confirm())
            asked.add_done_callback(self._answered)
            self._confirmations = {session: asked}
            return False
        return asked.done()

    def stop(self) -> None:
        """The daemon is stopping (its brokers, then its ledger, close next): the look at the
        broker still out is cancelled, and nothing it may still answer is checked."""
        self._stopped = True
        for asked in self._confirmations.values():
            asked.cancel()

    def _answered(self, asked: asyncio.Future[object]) -> None:
        if self._stopped or asked.cancelled():
            # The daemon is stopping: no answer (a look at a closing broker fails), nothing
            # to check on a closing ledger. A look cancelled otherwise: the minute loop's next
            # check asks again.
            return
        if asked.exception() is not None:
            log.warning(
                "guard     the broker could not be asked at the close: %s", asked.exception()
            )
        try:
            self.check()  # what is still held now is held past the close
        except Exception:  # the minute loop (supervised) runs the same check and dies loudly
            log.exception("position guard check after the close's look at the broker failed")

    def _working_sells(self, key: tuple[str, str]) -> list[OrderRow]:
        working = self._ledger.orders(strategy=key[0], symbol=key[1], open_only=True)
        return [o for o in working if o.side == "sell"]

    def auction_due(self, now: datetime) -> datetime | None:
        """When positions held past the close can first be sent to the opening auction
        (for a scheduler that would otherwise sleep through it), or None."""
        if not self.held_past_close:
            return None
        local = now.astimezone(NEW_YORK)
        if _auction_orders_taken(now):
            return now
        day = local.date()
        return datetime.combine(day, AUCTION_ORDERS_FROM, NEW_YORK)

    def describe(self) -> dict[str, list[dict[str, object]]]:
        """What ``magellan status`` shows of the guard."""
        return {
            "unprotected": [
                {"strategy": s, "symbol": sym, "qty": q} for (s, sym), q in self.unprotected.items()
            ],
            "held_past_close": [
                {"strategy": s, "symbol": sym, "qty": q}
                for (s, sym), q in self.held_past_close.items()
            ],
        }


def _remaining(order: OrderRow) -> int:
    return int(order.qty - order.filled_qty) if order.qty > order.filled_qty else 0


def _auction_orders_taken(now: datetime) -> bool:
    local = now.astimezone(NEW_YORK).time()
    return local >= AUCTION_ORDERS_FROM or local < AUCTION_ORDERS_UNTIL
