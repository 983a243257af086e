"""Every strategy the daemon can run, by the name its config uses.

This is the one place that maps a strategy's name to its descriptor. Adding a strategy: write
its module in ``strategies/`` (a pure class with the ``Strategy`` protocol and a frozen params
model), add its descriptor here, and add its TOML in ``configs/`` and an entry under
``[strategies]`` in ``magellan.toml``. Nothing in the daemon names a strategy.
"""

from __future__ import annotations

from datetime import timedelta

from strategies.api.descriptor import RoutingExtras, StrategyDescriptor
from strategies.api.params import HysteresisBands
from strategies.bear_trap.strategy import BearTrap, BearTrapParams
from strategies.daily_trend import DailySymbolParams, DailyTrend, DailyTrendParams
from strategies.hourly_swing import HourlySwing, HourlySwingParams

DAILY_TREND: StrategyDescriptor[DailyTrendParams] = StrategyDescriptor(
    name="daily_trend",
    order_code="dt",
    params_class=DailyTrendParams,
    # Its skips are explained whatever is asked: one record per symbol per day is cheap.
    build=lambda params, state, *, explain_skips=True: DailyTrend(params, state=state),
    drive="daily_signal",
    timeframe="1Day",
    schedule="signal 16:05 ET (close+5 on early closes), orders at next open + {delay} s",
    symbols=lambda params: params.symbols,
    symbols_field="symbols",
    execution_delay=lambda params: timedelta(seconds=params.execution_delay_seconds),
    config_tables=(("", DailyTrendParams), ("`[symbols]` entries", DailySymbolParams)),
)

HOURLY_SWING: StrategyDescriptor[HourlySwingParams] = StrategyDescriptor(
    name="hourly_swing",
    order_code="hs",
    params_class=HourlySwingParams,
    # Its skips are explained whatever is asked: a few symbols, one record an hour each.
    build=lambda params, state, *, explain_skips=True: HourlySwing(params, state=state),
    drive="hourly_bars",
    timeframe="1Hour",
    schedule="each completed hourly bar 10:00–16:00 ET (bars 10:00..15:00 start)",
    symbols=lambda params: params.symbols,
    symbols_field="symbols",
    configured_timeframe=lambda params: params.timeframe,
    config_tables=(("", HourlySwingParams), ("`[symbols]` entries", HysteresisBands)),
)

BEAR_TRAP: StrategyDescriptor[BearTrapParams] = StrategyDescriptor(
    name="bear_trap",
    order_code="bt",
    params_class=BearTrapParams,
    build=lambda params, state, *, explain_skips=True: BearTrap(
        params, state=state, explain_skips=explain_skips
    ),
    drive="minute_stream",
    timeframe="1Min",
    schedule="every 1Min bar 09:30–close",
    symbols=lambda params: params.universe,
    symbols_field="universe",
    accepts_all_symbols=True,
    routing=lambda params: RoutingExtras(
        max_spread_pct=params.max_spread_pct, min_liquidity_shares=params.min_liquidity_shares
    ),
    config_tables=(("", BearTrapParams),),
    horizon="intraday",
    protective_stop=True,
    per_symbol_state=True,
)

REGISTRY: dict[str, StrategyDescriptor] = {  # type: ignore[type-arg]
    d.name: d for d in (DAILY_TREND, HOURLY_SWING, BEAR_TRAP)
}


def descriptor(name: str) -> StrategyDescriptor:  # type: ignore[type-arg]
    """The descriptor of strategy ``name``; ``KeyError`` names the known ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown strategy {name!r} (known: {', '.join(REGISTRY)})") from None
