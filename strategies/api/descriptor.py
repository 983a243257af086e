"""What the daemon needs to know to drive a strategy, said once per strategy.

Each strategy module ends with a ``DESCRIPTOR``: its name, the two letters its orders carry
in their ``client_order_id``, its classes, how it is driven (a minute-bar stream, hourly jobs,
or a daily signal with next-open execution: ``magellan_daemon.runtime.drives`` says what each
means), how long its positions live, whether they rest under a protective stop, whether its
state is saved a symbol at a time, and how its symbols, execution delay and routing extras
are read from its params. The daemon learns these here, never by probing a strategy object.
``strategies.registry`` lists the descriptors; the daemon, the scheduler, ``check-config``
and ``signals`` iterate over them and never name a strategy.

``StrategyDescriptor.resolve(params)`` gives the ``StrategySpec``: the same facts with the
configured values filled in, which is what the daemon's parts are built from.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Generic, Literal, Protocol, TypeVar

from strategies.api.model import ALL_SYMBOLS, Strategy, Timeframe
from strategies.api.params import EmergencyStop, FrozenModel, RiskLimits

# minute_stream: every 1Min bar from the market-data websocket, plus a minute clock for
#   time-driven exits; orders go out at once.
# hourly_bars: each completed clock-hour bar inside the session, fetched over REST just after
#   it completes; the bar ending at the close executes at the next open.
# daily_signal: the session's daily bar at close + 5 minutes; orders at the next open.
Drive = Literal["minute_stream", "hourly_bars", "daily_signal"]
# How long a position of the strategy may live: "intraday" is flat by the close (the
# daemon's position guard flattens what is left before it); "multi_day" holds overnight.
Horizon = Literal["intraday", "multi_day"]
P = TypeVar("P", bound=FrozenModel)


class Build(Protocol):
    """How a strategy object is made: ``build(params, saved state or None)``.

    ``explain_skips=False`` says no record of a skipped bar is wanted (the daemon's and the
    backtest's runners: the ledger keeps the decisions that matter, and on a full-market
    watch almost every bar is a skip); ``signals`` keeps the default and gets every record.
    A strategy whose skip records cost little may explain its skips anyway.
    """

    def __call__(
        self, params: Any, state: dict[str, Any] | None, /, *, explain_skips: bool = True
    ) -> Strategy: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class RoutingExtras:
    """Entry gates beyond ``RiskLimits`` that the router applies for this strategy."""

    max_spread_pct: float | None = None  # (ask - bid) / mid above this: no entry
    min_liquidity_shares: int | None = None  # fewer shares at the bid or ask: no entry


@dataclass(frozen=True, slots=True, kw_only=True)
class StrategySpec:
    """One configured strategy as the daemon drives it."""

    name: str
    order_code: str
    drive: Drive
    timeframe: Timeframe
    symbols: tuple[str, ...]  # in config order; (ALL_SYMBOLS,) = every symbol the feed sends
    execution_delay: timedelta  # next-open intents go out at the open + this
    risk: RiskLimits
    emergency: EmergencyStop
    routing: RoutingExtras
    schedule: str  # one line for check-config
    horizon: Horizon = "multi_day"
    protective_stop: bool = False  # every position rests under a stop order at the broker
    per_symbol_state: bool = False  # saved a symbol at a time (``snapshot(symbols=...)``)

    @property
    def whole_market(self) -> bool:
        """True when the strategy watches every symbol (``["*"]``)."""
        return ALL_SYMBOLS in self.symbols


@dataclass(frozen=True, slots=True, kw_only=True)
class StrategyDescriptor(Generic[P]):
    """How one strategy is built, configured and driven."""

    name: str
    order_code: str  # in client_order_ids (mg-<code>-...): short, so ids stay readable
    params_class: type[P]
    build: Build  # (params, saved state or None, *, explain_skips=True)
    drive: Drive
    timeframe: Timeframe  # the bars its drive gives it in the daemon
    schedule: str  # for check-config; "{delay}" is replaced with the execution delay
    symbols: Callable[[P], Iterable[str]]
    symbols_field: str  # the params field ``symbols`` reads (for messages and overrides)
    accepts_all_symbols: bool = False  # may that field be ["*"]
    execution_delay: Callable[[P], timedelta] = lambda params: timedelta(0)
    routing: Callable[[P], RoutingExtras] = lambda params: RoutingExtras()
    # A strategy whose rule may run on other bars (the backtest): its configured timeframe.
    configured_timeframe: Callable[[P], Timeframe] | None = None
    # The models of the strategy's TOML ("" for the file itself, else a label like
    # "`[symbols]` entries"), for the README's generated configuration reference.
    config_tables: tuple[tuple[str, type[FrozenModel]], ...] = ()
    horizon: Horizon = "multi_day"
    protective_stop: bool = False  # its positions must rest under a stop at the broker
    # Its state is saved a symbol at a time (``Strategy.snapshot(symbols=...)``): each
    # symbol's entry is independent of the others' (a watch of the whole market).
    per_symbol_state: bool = False

    def resolve(self, params: P) -> StrategySpec:
        """The spec of this strategy configured with ``params``."""
        delay = self.execution_delay(params)
        gates: Any = params  # every params model has ``risk`` and ``emergency``
        return StrategySpec(
            name=self.name,
            order_code=self.order_code,
            drive=self.drive,
            timeframe=(
                self.timeframe
                if self.configured_timeframe is None
                else self.configured_timeframe(params)
            ),
            symbols=tuple(dict.fromkeys(self.symbols(params))),
            execution_delay=delay,
            risk=gates.risk,
            emergency=gates.emergency,
            routing=self.routing(params),
            schedule=self.schedule.format(delay=int(delay.total_seconds())),
            horizon=self.horizon,
            protective_stop=self.protective_stop,
            per_symbol_state=self.per_symbol_state,
        )

    def watching_all_symbols(self, params: P) -> P:
        """``params`` with the symbols field set to ``["*"]`` (``signals --all-symbols``)."""
        if not self.accepts_all_symbols:
            raise ValueError(f"{self.name} cannot watch every symbol")
        return params.model_copy(update={self.symbols_field: (ALL_SYMBOLS,)})
