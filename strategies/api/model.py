"""The values that cross the boundary between the pure strategies and the daemon.

Strategies take ``Bar`` and ``OrderUpdate`` values (plus the current time, passed in) and
return ``Intent`` and ``Evaluation`` values. Nothing here does I/O or reads a clock.

Prices inside strategies are floats (indicators are compared with pandas to 1e-9); share
quantities are ints (whole shares only). The daemon converts to ``Decimal`` at its ledger.

How the daemon executes each ``Intent.action``:

- ``buy`` / ``sell``: a market order (time in force ``day``) for ``qty`` shares, or for the
  size the router computes from ``sizing`` when ``qty`` is None (entries only). ``execute``
  says when: ``now`` or ``next_open`` (Daily Trend's 16:05 signal; an hourly signal on the
  bar that ends at the close).
- ``place_stop``: a resting GTC stop sell for ``qty`` at ``stop_price`` (Bear Trap's
  protective stop, placed after the entry fill).
- ``replace_stop``: change that resting stop to ``qty`` shares at ``stop_price`` (reduce
  before a partial exit, raise to support after TP2). Emitted *before* the sell it makes room
  for, in the same list; the router executes a list in order.
- ``cancel_stop``: cancel that resting stop (before the final exit).

The daemon reports back with ``OrderUpdate`` values for the strategy's own orders only:
one per fill increment (``kind="fill"``, ``qty`` the increment, not the cumulative) and one
when an order ends without filling completely (``canceled`` / ``expired`` / ``rejected``,
``qty`` = 0, ``filled_qty`` the total filled before it ended). ``order_qty`` is the order's
size, so a strategy knows when its order is completely filled. An intent the router does not
send at all (a risk gate, size 0, nothing to sell, shares still held by a stop the broker has
not confirmed cancelled) comes back as ``rejected`` with ``order_qty`` 0 and the reason.

After every stop intent (``place_stop`` / ``replace_stop`` / ``cancel_stop``), done or not,
the router reports once what rests at the broker now: ``kind="stop"``, ``qty`` the shares of
the strategy's resting protective stop (0: none), ``price`` its stop price. It is a fact, not
an echo of the request: a refused replace reports the old stop that still rests.

Updates arrive in the order the daemon learned of them, never while the router works on the
strategy's orders: a strategy's answer to an update is queued behind what is already going.

After a restart the daemon calls ``sync`` with the ledger's view of every symbol the
strategy holds or has orders on (``HoldingView``), so the strategy can correct what it
missed while it was down (a fill booked after its last snapshot, an order that ended).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal, Protocol

from strategies.api.session import Session

Side = Literal["buy", "sell"]
Action = Literal["buy", "sell", "place_stop", "replace_stop", "cancel_stop"]
# The actions on a protective stop: each ends in a stop report (what rests now), not a fill.
STOP_ACTIONS: frozenset[str] = frozenset({"place_stop", "replace_stop", "cancel_stop"})
Execute = Literal["now", "next_open"]
Decision = Literal["enter", "exit", "hold", "skip"]
UpdateKind = Literal["fill", "canceled", "expired", "rejected", "stop"]
Timeframe = Literal["1Min", "1Hour", "1Day"]
ALL_SYMBOLS = "*"  # a universe of just this watches every symbol the feed sends
# The leg of the resting protective stop order (at the broker, GTC): the strategies name it on
# their stop intents, the daemon finds the stop among the open orders by it and reports it
# under it. One home, so the two sides cannot drift apart.
PROTECTIVE_STOP_LEG = "protective_stop"


@dataclass(frozen=True, slots=True, kw_only=True)
class Bar:
    """One completed bar. ``t`` is the bar's start (aware UTC), as Alpaca stamps it."""

    symbol: str
    timeframe: Timeframe
    t: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float


@dataclass(frozen=True, slots=True, kw_only=True)
class FixedDollars:
    """Entry sizing: ``floor(dollars / price)`` shares (Daily Trend, Hourly Swing)."""

    dollars: float
    price: float


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskBased:
    """Entry sizing: ``floor(risk_fraction * equity / (price - stop))`` shares, capped at
    ``floor(max_dollars / price)`` (Bear Trap)."""

    risk_fraction: float
    price: float
    stop: float
    max_dollars: float


Sizing = FixedDollars | RiskBased


@dataclass(frozen=True, slots=True, kw_only=True)
class Intent:
    """What a strategy wants done. ``(strategy, symbol, signal_time, leg)`` identifies it:
    the daemon derives the ``client_order_id`` from exactly these four."""

    strategy: str
    symbol: str
    action: Action
    leg: str  # entry, exit, tp1, tp2, time_stop, eod, stop, ...
    signal_time: datetime  # start of the bar whose completion triggered it
    reason: str
    qty: int | None = None
    sizing: Sizing | None = None
    stop_price: float | None = None
    execute: Execute = "now"


@dataclass(frozen=True, slots=True, kw_only=True)
class Evaluation:
    """The record of one symbol evaluated on one bar: enough to answer "why not X?"."""

    strategy: str
    symbol: str
    bar_time: datetime
    decision: Decision
    reason: str
    values: dict[str, float | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderUpdate:
    """News about one of the strategy's own orders, identified by ``leg``/``signal_time``."""

    strategy: str
    symbol: str
    leg: str
    signal_time: datetime
    side: Side
    kind: UpdateKind
    time: datetime
    qty: int = 0  # this fill's increment (0 for non-fills); the resting qty for "stop"
    price: float | None = None  # this fill's price; the resting stop price for "stop"
    filled_qty: int = 0  # cumulative filled on the order after this update
    order_qty: int | None = None  # the order's total quantity (None when never sent)
    reason: str = ""  # why an order was not sent or ended (for the evaluation record)


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """What a strategy returns from one call."""

    intents: tuple[Intent, ...] = ()
    evaluations: tuple[Evaluation, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenOrderView:
    """One of the strategy's orders still working at the broker, or an intent not yet sent."""

    leg: str
    signal_time: datetime
    side: Side
    remaining: int  # shares still to fill
    stop_price: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HoldingView:
    """What the ledger knows of one symbol for one strategy (``Strategy.sync``)."""

    symbol: str
    position: int  # the strategy's own shares, by its fills
    open_orders: tuple[OpenOrderView, ...] = ()

    def resting_stop(self) -> OpenOrderView | None:
        """The protective stop working for this position, if any."""
        stops = [o for o in self.open_orders if o.leg == PROTECTIVE_STOP_LEG]
        return stops[-1] if stops else None


class Strategy(Protocol):
    """The contract between a pure strategy and the daemon that drives it.

    Every hook is declared here and every strategy implements every one: the daemon calls
    them directly and never looks for one. A hook a strategy has no use for gives the
    documented "nothing" answer (``on_clock``: ``Step()``; ``rebase``: no change). What the
    daemon must know before it calls anything (how the strategy is driven, whether its state
    is saved per symbol, its horizon, its protective stop) is declared in its
    ``StrategyDescriptor``, not asked of the strategy object.
    """

    name: str
    timeframe: str

    def on_bar(self, bar: Bar, *, session: Session | None) -> Step:
        """Evaluate one completed bar."""
        ...

    def on_clock(self, now: datetime, session: Session | None) -> Step:
        """The time alone (the minute clock of a strategy driven by streamed minute bars):
        exits the time says are due for symbols whose bars stopped coming. A strategy whose
        rules run on bars alone returns ``Step()``."""
        ...

    def clock_due(self) -> bool:
        """Whether ``on_clock`` could decide anything now (e.g. a position whose time stop
        or end-of-day exit the time alone can trigger). The daemon skips the tick when not:
        the minute clock is most of a backtest's steps, and nothing is held at most of
        them. A strategy whose ``on_clock`` returns ``Step()`` returns False."""
        ...

    def on_order_update(self, update: OrderUpdate) -> Step:
        """Book news about one of the strategy's own orders."""
        ...

    def warmup(self, bars: Iterable[Bar], sessions: Callable[[date], Session | None]) -> None:
        """Feed history without deciding anything."""
        ...

    def sync(self, views: Mapping[str, HoldingView], now: datetime) -> Step:
        """Take the ledger's view after a restart as the truth; return what to do about it."""
        ...

    def snapshot(self, symbols: Iterable[str] | None = None) -> dict[str, Any]:
        """JSON-serialisable state (``"symbols"`` holds the per-symbol entries). With
        ``symbols``: only those symbols' entries, for an incremental save; the daemon asks
        that only of a strategy whose descriptor declares ``per_symbol_state`` (each symbol's
        entry independent of the others'), and any other returns its whole state."""
        ...

    def rebase(self, symbol: str, ratio: float) -> None:
        """A split of ``ratio`` (``new_rate / old_rate``) on ``symbol`` takes effect before
        this session: put the symbol's price state on the new scale (prices divided by
        ``ratio``, shares multiplied; ``strategies.lib.rebase`` has the helpers). A strategy that
        keeps no price state changes nothing."""
        ...
