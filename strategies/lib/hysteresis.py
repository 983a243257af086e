"""The RSI Schmitt trigger shared by Daily Trend and Hourly Swing (pure, incremental).

Per symbol: one ``RSI``, the shares held by this strategy's own fills, and a ``pending``
marker while an entry or exit order is outstanding. The rule (strategies.md):

- flat and ``rsi > upper`` -> enter long (sizing, not qty);
- long and ``rsi < lower`` -> exit the whole position (exact qty);
- otherwise nothing. No sell for a symbol not held, no buy for one already held, no second
  order while one is pending.

A subclass says which bars count (``_bar_in_session``), the sizing of an entry and when an
intent executes. Bars with a non-finite price or volume are skipped (recorded in the
evaluation and counted in ``invalid_bars``) and never reach the RSI.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from typing import Any, ClassVar

from strategies.api.model import (
    Bar,
    Decision,
    Evaluation,
    Execute,
    FixedDollars,
    HoldingView,
    Intent,
    OrderUpdate,
    Step,
)
from strategies.api.params import HysteresisBands
from strategies.api.session import NEW_YORK, Session
from strategies.lib.indicators import RSI, RsiMethod
from strategies.lib.rebase import rebase_marker_qty, rebase_rsi, shares_after

log = logging.getLogger(__name__)

STATE_VERSION = 1
TERMINAL_NON_FILLS = frozenset({"canceled", "expired", "rejected"})


def new_york_date(t: datetime) -> date:
    """The New York calendar date of an aware instant."""
    return t.astimezone(NEW_YORK).date()


class SymbolState:
    """One symbol's indicator, position and outstanding order."""

    __slots__ = ("pending", "position", "rsi")

    def __init__(self, rsi: RSI, position: int = 0, pending: dict[str, Any] | None = None):
        self.rsi = rsi
        self.position = position
        # {"leg", "side", "signal_time" (ISO), "qty" (expected shares)} while an order is out.
        self.pending = pending

    def to_dict(self) -> dict[str, Any]:
        """Serialisable state."""
        return {"rsi": self.rsi.to_dict(), "position": self.position, "pending": self.pending}


class HysteresisStrategy:
    """Base class: the per-symbol hysteresis state machine and its bookkeeping."""

    name: ClassVar[str]
    timeframe: ClassVar[str]

    def __init__(
        self,
        bands: dict[str, HysteresisBands],
        rsi_method: RsiMethod,
        state: dict[str, Any] | None,
    ) -> None:
        self._bands = bands
        self._rsi_method: RsiMethod = rsi_method
        self._symbols: dict[str, SymbolState] = {}
        self.invalid_bars = 0
        if state is not None:
            self._restore(state)
        for symbol in bands:
            self._symbols.setdefault(symbol, SymbolState(self._new_rsi(symbol)))

    # -- subclass hooks ---------------------------------------------------------------------

    def _bar_in_session(self, bar: Bar, session: Session | None) -> bool:
        raise NotImplementedError

    def _entry_dollars(self, symbol: str) -> float:
        raise NotImplementedError

    def _entry_shares(self, symbol: str) -> int | None:
        """A fixed entry size in shares instead of ``_entry_dollars`` worth (None: dollars)."""
        return None

    def _execute(self, bar: Bar, session: Session) -> Execute:
        raise NotImplementedError

    # -- the strategy contract -------------------------------------------------------------

    def position(self, symbol: str) -> int:
        """Shares this strategy holds in ``symbol`` by its own fills."""
        st = self._symbols.get(symbol)
        return 0 if st is None else st.position

    def pending(self, symbol: str) -> dict[str, Any] | None:
        """The outstanding order marker for ``symbol`` (None when none)."""
        st = self._symbols.get(symbol)
        return None if st is None else st.pending

    def on_bar(self, bar: Bar, *, session: Session | None) -> Step:
        """Evaluate one completed bar of ``bar.symbol``."""
        st = self._symbols.get(bar.symbol)
        if st is None or bar.symbol not in self._bands:
            return self._skip(bar, "unknown symbol (not in this strategy's universe)", None)
        if not _finite_bar(bar):
            self.invalid_bars += 1
            return self._skip(
                bar, "invalid bar (non-finite price or volume, or close <= 0): skipped", st
            )
        if session is None or not self._bar_in_session(bar, session):
            return self._skip(bar, "outside regular session", st)
        st.rsi.update(bar.close)
        if not st.rsi.ready:
            reason = f"warming up ({st.rsi.bars}/{st.rsi.warmup_bars} bars)"
            return self._skip(bar, reason, st)
        return self._decide(bar, session, st)

    def on_order_update(self, update: OrderUpdate) -> Step:
        """Book a fill or a terminal non-fill of one of this strategy's orders."""
        st = self._symbols.get(update.symbol)
        if st is None:
            st = self._symbols[update.symbol] = SymbolState(self._new_rsi(update.symbol))
        if update.kind == "fill" and update.qty > 0:
            if update.side == "buy":
                st.position += update.qty
            else:
                if update.qty > st.position:
                    log.error(
                        "%s %s: sell fill of %d exceeds the %d held; booking flat",
                        self.name,
                        update.symbol,
                        update.qty,
                        st.position,
                    )
                st.position = max(0, st.position - update.qty)
        if st.pending is not None and self._matches_pending(st.pending, update):
            wanted = update.order_qty if update.order_qty is not None else st.pending["qty"]
            done_filling = update.kind == "fill" and update.filled_qty >= wanted
            if done_filling or update.kind in TERMINAL_NON_FILLS:
                st.pending = None
        return Step()

    def sync(self, views: Mapping[str, HoldingView], now: datetime) -> Step:
        """After a restart: the ledger's positions are the truth, and an outstanding-order
        marker whose order (or unsent intent) no longer exists is cleared, so the next bar
        decides again. Nothing is sent from here."""
        for symbol in sorted(set(views) | set(self._symbols)):
            view = views.get(symbol) or HoldingView(symbol=symbol, position=0)
            st = self._symbols.get(symbol)
            if st is None:
                st = self._symbols[symbol] = SymbolState(self._new_rsi(symbol))
            if st.position != view.position:
                log.warning(
                    "%s %s: the ledger holds %d shares, the snapshot %d: taking the ledger's",
                    self.name,
                    symbol,
                    view.position,
                    st.position,
                )
                st.position = view.position
            pending = st.pending
            if pending is not None and not any(
                o.leg == pending["leg"]
                and o.side == pending["side"]
                and _iso(o.signal_time) == pending["signal_time"]
                for o in view.open_orders
            ):
                st.pending = None
        return Step()

    def warmup(self, bars: Iterable[Bar], sessions: Callable[[date], Session | None]) -> None:
        """Feed history into the indicators without producing intents."""
        for bar in bars:
            st = self._symbols.get(bar.symbol)
            if st is None or bar.symbol not in self._bands or not _finite_bar(bar):
                continue
            session = sessions(new_york_date(bar.t))
            if session is not None and self._bar_in_session(bar, session):
                st.rsi.update(bar.close)

    def rebase(self, symbol: str, ratio: float) -> None:
        """A split of ``ratio`` on ``symbol`` takes effect: its state on the new scale."""
        rebase_symbol(self, symbol, ratio)

    def on_clock(self, now: datetime, session: Session | None) -> Step:
        """Nothing: the hysteresis rule runs on completed bars alone."""
        return Step()

    def clock_due(self) -> bool:
        """Never: the hysteresis rule runs on completed bars alone."""
        return False

    def snapshot(self, symbols: Iterable[str] | None = None) -> dict[str, Any]:
        """JSON-serialisable state; ``cls(params, state=snapshot)`` continues identically.
        Always the whole state (``symbols`` is not used: no per-symbol saves declared)."""
        return {
            "version": STATE_VERSION,
            "strategy": self.name,
            "invalid_bars": self.invalid_bars,
            "symbols": {sym: st.to_dict() for sym, st in sorted(self._symbols.items())},
        }

    # -- internals --------------------------------------------------------------------------

    def _new_rsi(self, symbol: str) -> RSI:
        bands = self._bands.get(symbol)
        # A symbol outside the universe (only seen through an order update) still needs a
        # slot for its position; its RSI is never fed.
        return RSI(bands.rsi_period if bands else 14, self._rsi_method)

    def _restore(self, state: dict[str, Any]) -> None:
        if state.get("version") != STATE_VERSION or state.get("strategy") != self.name:
            raise ValueError(
                f"{self.name}: cannot restore state version={state.get('version')!r} "
                f"strategy={state.get('strategy')!r}"
            )
        self.invalid_bars = int(state.get("invalid_bars", 0))
        for symbol, data in state["symbols"].items():
            rsi = RSI.from_dict(data["rsi"])
            expected = self._new_rsi(symbol)
            if (rsi.period, rsi.method) != (expected.period, expected.method):
                # The config changed the RSI: the old averages mean nothing; warm up again.
                log.warning("%s %s: RSI settings changed, indicator reset", self.name, symbol)
                rsi = expected
            pending = data["pending"]
            self._symbols[symbol] = SymbolState(
                rsi, int(data["position"]), None if pending is None else dict(pending)
            )

    @staticmethod
    def _matches_pending(pending: dict[str, Any], update: OrderUpdate) -> bool:
        return (
            pending["leg"] == update.leg
            and pending["signal_time"] == _iso(update.signal_time)
            and pending["side"] == update.side
        )

    def _decide(self, bar: Bar, session: Session, st: SymbolState) -> Step:
        bands = self._bands[bar.symbol]
        rsi = st.rsi.value
        assert rsi is not None  # ready implies at least one delta
        if rsi > bands.upper:
            if st.position > 0:
                return self._skip(bar, f"already held: rsi {rsi:.2f} > upper", st, "hold")
            if st.pending is not None:
                return self._skip(bar, f"order pending ({st.pending['leg']})", st)
            return self._enter(bar, session, st, rsi, bands)
        if rsi < bands.lower:
            if st.position <= 0:
                return self._skip(bar, f"not held: rsi {rsi:.2f} < lower", st)
            if st.pending is not None:
                return self._skip(bar, f"order pending ({st.pending['leg']})", st)
            return self._exit(bar, session, st, rsi, bands)
        held = "held" if st.position > 0 else "flat"
        return self._skip(bar, f"{held}: rsi {rsi:.2f} between bands", st, "hold")

    def _enter(
        self, bar: Bar, session: Session, st: SymbolState, rsi: float, bands: HysteresisBands
    ) -> Step:
        dollars = self._entry_dollars(bar.symbol)
        shares = self._entry_shares(bar.symbol)
        if shares:
            # Sized in dollars so the router gates it at this price like any entry; half a
            # share of headroom so float rounding never makes floor(dollars / price) one less.
            dollars = (shares + 0.5) * bar.close
        reason = f"entry: rsi {rsi:.2f} > upper {bands.upper:g}"
        intent = Intent(
            strategy=self.name,
            symbol=bar.symbol,
            action="buy",
            leg="entry",
            signal_time=bar.t,
            reason=reason,
            sizing=FixedDollars(dollars=dollars, price=bar.close),
            execute=self._execute(bar, session),
        )
        expected = math.floor(dollars / bar.close) if bar.close > 0 else 0
        st.pending = {"leg": "entry", "side": "buy", "signal_time": _iso(bar.t), "qty": expected}
        return Step(intents=(intent,), evaluations=(self._evaluation(bar, st, "enter", reason),))

    def _exit(
        self, bar: Bar, session: Session, st: SymbolState, rsi: float, bands: HysteresisBands
    ) -> Step:
        reason = f"exit: rsi {rsi:.2f} < lower {bands.lower:g}"
        intent = Intent(
            strategy=self.name,
            symbol=bar.symbol,
            action="sell",
            leg="exit",
            signal_time=bar.t,
            reason=reason,
            qty=st.position,
            execute=self._execute(bar, session),
        )
        st.pending = {
            "leg": "exit",
            "side": "sell",
            "signal_time": _iso(bar.t),
            "qty": st.position,
        }
        return Step(intents=(intent,), evaluations=(self._evaluation(bar, st, "exit", reason),))

    def _skip(
        self, bar: Bar, reason: str, st: SymbolState | None, decision: Decision = "skip"
    ) -> Step:
        return Step(evaluations=(self._evaluation(bar, st, decision, reason),))

    def _evaluation(
        self, bar: Bar, st: SymbolState | None, decision: Decision, reason: str
    ) -> Evaluation:
        bands = self._bands.get(bar.symbol)
        values: dict[str, float | None] = {
            "rsi": None if st is None or not st.rsi.ready else st.rsi.value,
            "upper": None if bands is None else bands.upper,
            "lower": None if bands is None else bands.lower,
            "position": None if st is None else float(st.position),
            "close": bar.close,
        }
        return Evaluation(
            strategy=self.name,
            symbol=bar.symbol,
            bar_time=bar.t,
            decision=decision,
            reason=reason,
            values=values,
        )


def _finite_bar(bar: Bar) -> bool:
    return (
        all(math.isfinite(v) for v in (bar.open, bar.high, bar.low, bar.close, bar.volume))
        and bar.close > 0
    )


def _iso(t: datetime) -> str:
    return t.isoformat()


def rebase_symbol(strategy: HysteresisStrategy, symbol: str, ratio: float) -> None:
    """``HysteresisStrategy.rebase``: the RSI's price state divided by the split's ratio,
    the position and a pending order's shares multiplied (``strategies.lib.rebase``)."""
    st = strategy._symbols.get(symbol)
    if st is None:
        return
    rebase_rsi(st.rsi, ratio)
    st.position = shares_after(st.position, ratio)
    rebase_marker_qty(st.pending, ratio)
