"""Bear Trap: buy the reclaim of a new session low on a stock down 15% on the day (pure).

Rules: ``../shared/spec/strategies.md`` section 3, with its correction (the reclaim compares
the close with the session low *before* the bar). Bars: 1Min, regular session only; every
per-symbol update is O(1), so the universe may be the whole market (``universe = ["*"]``).

Modules: ``params`` (parameters), ``state`` (per-symbol state, bar checks), ``entry`` (the
entry rule), ``plan`` (the trade plan), ``exits`` (the open trade's exits), ``orders`` (order
bookkeeping); this one drives them (the strategy contract).

Per symbol: the session tracker (open/high/low of the New York session), ATR(14) and the
20-bar volume mean (both over regular-session bars, carried across days), and, while a trade
is on, its ``TradePlan``: stop, support, TP levels fixed at entry, the shares held by this
strategy's own fills, the protective stop order at the broker and the pending markers.

Decisions this module makes where the spec is silent (each has a table test):

- Exit quantities: TP1 sells ``floor(0.40 * entry_qty)``, TP2 ``floor(0.30 * entry_qty)``,
  the runner is the rest, so the three always sum to the entry quantity. A part that rounds
  to 0 shares sends nothing (TP2 still raises the stop). Every sell is capped at the shares
  held.
- Several exits on one bar: a touched stop wins (the resting stop sells everything, and a
  market sell would compete with it for the same shares); then a due final exit (time stop,
  then EOD) wins over TP1/TP2, because it sells a superset of the shares and the position
  must be flat by close - 5 min; then TP1, then TP2. At most one exit per bar: a bar whose
  high passes both TP levels takes TP1, and TP2 waits for a later bar that reaches the
  session high again (TP2 is only armed once TP1 has been done).
- While an exit order is outstanding no other exit is sent (the touched-stop record still
  is). An exit that did not happen (not sent, rejected, canceled) restores the protective
  stop to the shares held; if nothing of a TP1/TP2 was sold, that target is tried again on a
  later bar (TP2's raised stop goes back); a final exit is decided again by the next bar or
  clock tick.
- What rests at the broker is a fact the router reports after each stop intent (a refused
  replace: the old stop; an unconfirmed cancel: the stop still rests). A position without a
  resting stop (its placement refused, the stop canceled outside our requests) gets one
  placed again on the next bar or clock tick (``orders``).
- After a restart the ledger's positions and open orders win over the snapshot (``sync``).
- The entry's pending marker is cleared by its first fill (the strategy cannot know the size
  the router chose); later fills of the same entry order still add to the position and
  resize the stop. Time stop: 30 minutes after the first entry fill.
- Stop management intents (``place_stop``/``replace_stop``/``cancel_stop``, leg
  ``protective_stop``) carry the ``signal_time`` of the intent that placed the stop order, so
  the router always knows which order they are about.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from typing import Any, ClassVar

from strategies.api.model import (
    ALL_SYMBOLS,
    Bar,
    Decision,
    Evaluation,
    HoldingView,
    Intent,
    OrderUpdate,
    RiskBased,
    Step,
)
from strategies.api.session import NEW_YORK, Session
from strategies.bear_trap.entry import entry_values, first_failing_filter
from strategies.bear_trap.exits import TradeExits, evaluation
from strategies.bear_trap.orders import PlanOrders
from strategies.bear_trap.params import BearTrapParams
from strategies.bear_trap.plan import TradePlan
from strategies.bear_trap.rebase import rebase_state
from strategies.bear_trap.state import BAR_LENGTH, SymbolState, in_regular_session, valid_bar

log = logging.getLogger(__name__)

STATE_VERSION = 1
QUIET = Step()  # what a skipped bar returns when skips are not explained


class BearTrap:
    """The Bear Trap strategy (see the module docstring)."""

    name: ClassVar[str] = "bear_trap"
    timeframe: ClassVar[str] = "1Min"

    def __init__(
        self, params: BearTrapParams, state: dict | None = None, *, explain_skips: bool = True
    ) -> None:
        self.params = params
        # False: a bar that is skipped returns an empty Step (no evaluation record is built).
        # The daemon keeps records only for decisions that matter, and on a full-market
        # watch almost every bar is a skip: building its reason would cost more than the rest.
        self._explain_skips = explain_skips
        self._all = ALL_SYMBOLS in params.universe
        self._universe = frozenset(params.universe)
        self._excluded = frozenset(params.exclude)
        self._max_drawdown = -params.min_drop_pct
        self._symbols: dict[str, SymbolState] = {}
        self._orders = PlanOrders(self.name, params.tp1_target_fraction)
        self._exits = TradeExits(self.name, params, self._orders)
        if state is not None:
            self._restore(state)

    # -- the strategy contract --------------------------------------------------------------

    def position(self, symbol: str) -> int:
        """Shares this strategy holds in ``symbol`` by its own fills."""
        st = self._symbols.get(symbol)
        return 0 if st is None or st.plan is None else st.plan.position

    def plan(self, symbol: str) -> TradePlan | None:
        """The trade plan for ``symbol`` (None when flat with nothing pending)."""
        st = self._symbols.get(symbol)
        return None if st is None else st.plan

    def on_bar(self, bar: Bar, *, session: Session | None) -> Step:
        """Evaluate one completed 1Min bar: manage the open trade or look for an entry."""
        if not (self._all or bar.symbol in self._universe) or bar.symbol in self._excluded:
            return self._step(bar, "skip", "symbol not in the universe")
        if not in_regular_session(bar, session):
            return self._step(bar, "skip", "outside regular session")
        assert session is not None
        if not valid_bar(bar):
            return self._step(bar, "skip", "invalid bar (non-finite, non-positive or high<low)")
        st = self._symbols.get(bar.symbol) or self._state(bar.symbol)
        st.update(bar, session.date)
        now = bar.t + BAR_LENGTH
        plan = st.plan
        if plan is not None and (plan.position > 0 or plan.entry_pending):
            return self._exits.manage(plan, bar, now, session)
        if not self._explain_skips and self._surely_no_entry(st, bar):
            return QUIET
        return self._look_for_entry(st, bar, now, session)

    def _surely_no_entry(self, st: SymbolState, bar: Bar) -> bool:
        """The cheap filters of the entry rule (warm-up, first bar, drawdown) in O(1) with no
        allocation: True when one fails, so the full rule (and its record) would say skip."""
        tracker = st.session
        session_open = tracker.open
        return (
            not st.atr.mean.full
            or not st.volume.mean.full
            or tracker.prior_low is None
            or not session_open
            or not (bar.close - session_open) / session_open <= self._max_drawdown
        )

    def clock_due(self) -> bool:
        """Whether a position is held (the time alone can only exit one: ``on_clock``)."""
        return any(st.plan is not None and st.plan.position > 0 for st in self._symbols.values())

    def on_clock(self, now: datetime, session: Session | None) -> Step:
        """The time alone: sell what the time stop or the end of day says must go, for
        symbols whose bars stopped coming (a thin stock may print no bar at 15:54). Bars do
        the same when they arrive; an exit already pending is never sent twice."""
        held = sorted((s, st.plan) for s, st in self._symbols.items() if st.plan is not None)
        return self._exits.on_clock(held, now, session)

    def on_order_update(self, update: OrderUpdate) -> Step:
        """Book a fill, a terminal non-fill or a stop report of this strategy's own orders."""
        st = self._symbols.get(update.symbol)
        plan = None if st is None else st.plan
        if plan is None or st is None:
            if update.kind == "fill" and update.qty > 0:
                log.error("%s %s: fill with no trade plan: %r", self.name, update.symbol, update)
            return Step()
        if update.kind == "stop":
            intents = self._orders.on_stop_report(plan, update)
        elif update.kind == "fill":
            intents = (
                self._orders.on_entry_fill(plan, update)
                if update.side == "buy"
                else self._orders.on_exit_fill(plan, update)
            )
        else:
            intents = self._orders.on_terminal(plan, update)
        self._drop_if_done(st)
        return Step(intents=tuple(intents))

    def sync(self, views: Mapping[str, HoldingView], now: datetime) -> Step:
        """After a restart: take the ledger's positions and open orders as the truth (a fill
        booked after the last snapshot, an exit or entry order that ended while down), then
        protect what is held, or take away a stop that protects nothing."""
        intents: list[Intent] = []
        for symbol in sorted(set(views) | {s for s, st in self._symbols.items() if st.plan}):
            view = views.get(symbol) or HoldingView(symbol=symbol, position=0)
            st = self._state(symbol)
            if st.plan is None:
                if view.position <= 0:
                    continue
                log.error(
                    "%s %s: the ledger holds %d shares with no trade plan: exit at the time "
                    "stop or the close",
                    self.name,
                    symbol,
                    view.position,
                )
                st.plan = TradePlan.orphan(view.position, now, view.resting_stop())
            intents += self._orders.sync_plan(st.plan, view, now)
            self._drop_if_done(st)
        return Step(intents=tuple(intents))

    def warmup(self, bars: Iterable[Bar], sessions: Callable[[date], Session | None]) -> None:
        """Feed history into the session tracker, ATR and volume mean (no intents)."""
        for bar in bars:
            if not (self._all or bar.symbol in self._universe) or bar.symbol in self._excluded:
                continue
            if not valid_bar(bar):
                continue
            session = sessions(bar.t.astimezone(NEW_YORK).date())
            if in_regular_session(bar, session):
                assert session is not None
                self._state(bar.symbol).update(bar, session.date)

    def snapshot(self, symbols: Iterable[str] | None = None) -> dict[str, Any]:
        """JSON-serialisable state; ``BearTrap(params, state=snapshot)`` continues identically.
        ``symbols``: only those symbols' entries (an incremental save: each symbol's state
        is independent of the others', so the entries of several snapshots merge)."""
        if symbols is None:
            chosen = sorted(self._symbols.items())
        else:
            chosen = [(s, self._symbols[s]) for s in sorted(symbols) if s in self._symbols]
        return {
            "version": STATE_VERSION,
            "strategy": self.name,
            "symbols": {sym: st.to_dict() for sym, st in chosen},
        }

    # -- indicators and state -----------------------------------------------------------

    def _state(self, symbol: str) -> SymbolState:
        st = self._symbols.get(symbol)
        if st is None:
            st = self._symbols[symbol] = SymbolState(
                self.params.atr_period, self.params.volume_window
            )
        return st

    def _restore(self, state: dict[str, Any]) -> None:
        if state.get("version") != STATE_VERSION or state.get("strategy") != self.name:
            raise ValueError(
                f"{self.name}: cannot restore state version={state.get('version')!r} "
                f"strategy={state.get('strategy')!r}"
            )
        for symbol, data in state["symbols"].items():
            st = SymbolState.from_dict(data)
            if (st.atr.period, st.volume.window) != (
                self.params.atr_period,
                self.params.volume_window,
            ):
                # The config changed a window: the old values mean nothing; warm up again.
                log.warning("%s %s: indicator windows changed, reset", self.name, symbol)
                fresh = SymbolState(self.params.atr_period, self.params.volume_window)
                fresh.session, fresh.plan = st.session, st.plan
                st = fresh
            self._symbols[symbol] = st

    # -- entry ----------------------------------------------------------------------------

    def _look_for_entry(self, st: SymbolState, bar: Bar, now: datetime, session: Session) -> Step:
        p = self.params
        values = entry_values(st, bar, p.stop_atr_multiple)
        if now >= session.close - self._exits.eod:
            return self._step(bar, "skip", "entry cutoff: end of day", values)
        reason = first_failing_filter(p, st, bar, values)
        if reason:
            return self._step(bar, "skip", reason, values)
        stop = values["stop"]
        assert stop is not None and st.session.high is not None
        sizing = RiskBased(
            risk_fraction=p.risk_fraction,
            price=bar.close,
            stop=stop,
            max_dollars=p.max_position_dollars,
        )
        ratio = values["volume_ratio"]
        volume = "n/a (mean 0)" if ratio is None else f"{ratio:.2f}x"
        reason = (
            f"entry: down {-100 * (values['drawdown_pct'] or 0):.1f}%, trap+reclaim of "
            f"{values['session_low_prior']:.4g}, wick {values['wick_ratio']:.2f}, body "
            f"{values['body_ratio']:.2f}, volume {volume}; stop {stop:.4g}"
        )
        intent = Intent(
            strategy=self.name,
            symbol=bar.symbol,
            action="buy",
            leg="entry",
            signal_time=bar.t,
            reason=reason,
            sizing=sizing,
        )
        st.plan = TradePlan.at_signal(
            signal_time=bar.t,
            session_date=session.date,
            support=bar.low,
            stop=stop,
            session_high=st.session.high,
            tp1_target_fraction=p.tp1_target_fraction,
        )
        return Step(intents=(intent,), evaluations=(self._eval(bar, "enter", reason, values),))

    def _drop_if_done(self, st: SymbolState) -> None:
        plan = st.plan
        if (
            plan is not None
            and plan.position <= 0
            and not plan.entry_pending
            and plan.exit_pending is None
            and plan.stop_requests == 0
            and plan.stop_order is None
        ):
            st.plan = None

    # -- evaluations ----------------------------------------------------------------------

    def _eval(
        self, bar: Bar, decision: Decision, reason: str, values: dict[str, float | None]
    ) -> Evaluation:
        return evaluation(self.name, bar, decision, reason, values)

    def _step(
        self,
        bar: Bar,
        decision: Decision,
        reason: str,
        values: dict[str, float | None] | None = None,
    ) -> Step:
        if decision == "skip" and not self._explain_skips:
            return QUIET
        return Step(evaluations=(self._eval(bar, decision, reason, values or {}),))

    # -- corporate actions ----------------------------------------------------------------

    def rebase(self, symbol: str, ratio: float) -> None:
        """A split of ``ratio`` on ``symbol`` takes effect: indicators and the open trade's
        plan on the new scale (``rebase``)."""
        st = self._symbols.get(symbol)
        if st is not None:
            rebase_state(st, ratio)
