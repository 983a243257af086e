"""The price a bar gives a resting order: one rule for the simulator's exchange and the
replay broker of ``magellan signals``, so both fill a stop at the same price.

Bars only: no intrabar path is assumed. A bar's ``open`` is where it starts; a stop the bar
gaps through starts at the open, one it reaches later at the stop price. Prices are floats
as bars carry them; the caller rounds and applies its own quantities.
"""

from __future__ import annotations

from typing import Protocol


class BarPrices(Protocol):
    """What the rule reads from a bar (the simulator's and the strategies' bars both fit)."""

    @property
    def open(self) -> float: ...

    @property
    def high(self) -> float: ...

    @property
    def low(self) -> float: ...


def slippage_factor(buy: bool, slippage_bps: float) -> float:
    """The multiplier that makes a taker pay ``slippage_bps`` (1.0 for none)."""
    return (1 + slippage_bps / 10_000) if buy else (1 - slippage_bps / 10_000)


def stop_start(buy: bool, stop: float, bar: BarPrices) -> float | None:
    """The price at which ``bar`` triggers a stop at ``stop``, or None if it never reaches
    it: a buy stop when the high reaches it, a sell stop when the low does; the open if
    the bar opened beyond the stop (a gap), else the stop price itself."""
    touched = bar.high >= stop if buy else bar.low <= stop
    if not touched:
        return None
    return max(bar.open, stop) if buy else min(bar.open, stop)


def stop_limit_price(buy: bool, start: float, limit: float) -> float | None:
    """A triggered stop-limit becomes a limit at its trigger price ``start``: it fills in
    the triggering bar only if that price is already within ``limit``."""
    marketable = start <= limit if buy else start >= limit
    return start if marketable else None


def limit_price(buy: bool, bar: BarPrices, limit: float, *, at_open_only: bool) -> float | None:
    """The price ``bar`` gives a limit order: the open when it is within the limit, else
    the limit when the bar trades through it (never, with ``at_open_only``: an OPG order)."""
    if buy:
        if bar.open <= limit:
            return bar.open
        return None if at_open_only or bar.low > limit else limit
    if bar.open >= limit:
        return bar.open
    return None if at_open_only or bar.high < limit else limit
