"""The simulator's corporate actions: when each one applies, what a split does to a
holding, and how it adjusts historical prices.

Every action of the file applies once, at 00:00 New York of its ex-date: after the previous
session's after-hours trading, before the ex-date's pre-market and open (Alpaca processes
corporate actions overnight). A split re-bases each holding to ``floor(qty * ratio)`` shares
and pays the fraction as cash in lieu at the previous regular close divided by the ratio; a
dividend credits ``rate`` per share held (holdings cannot change overnight: the simulator
fills no order outside the regular session, so they are the previous close's).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

from magellan_core.corporate_actions import CorporateAction, SplitTable, dividend_multiplier
from magellan_sim.market.calendar import new_york_date, new_york_midnight
from magellan_sim.market.market import SimBar

CENT = Decimal("0.01")
FRACTION_STEP = Decimal("0.000000001")  # a fractional share to 9 places, as Alpaca's qty
ZERO = Decimal(0)
ADJUSTMENTS = ("raw", "split", "dividend", "all")


@dataclass(frozen=True, slots=True)
class SplitOutcome:
    """A holding after a split: whole shares, their cost basis, and the fraction paid out."""

    qty: Decimal
    cost: Decimal
    fraction: Decimal  # post-split shares paid as cash in lieu
    cash_in_lieu: Decimal  # rounded to the cent


def split_holding(
    qty: Decimal, cost: Decimal, new_rate: Decimal, old_rate: Decimal, adjusted_close: Decimal
) -> SplitOutcome:
    """``qty`` shares costing ``cost`` in all, split ``new_rate`` for ``old_rate``:
    ``floor(qty * new_rate / old_rate)`` shares keep their share of the cost basis; the
    fraction is paid at ``adjusted_close``. (Multiplied before dividing: ``9 * (1/3)`` in
    28-digit decimals could floor to 2.)"""
    exact = qty * new_rate / old_rate
    whole = exact.to_integral_value(rounding=ROUND_DOWN)
    fraction = (exact - whole).quantize(FRACTION_STEP, rounding=ROUND_DOWN)
    kept_cost = cost * whole / exact if exact else ZERO
    cash = (fraction * adjusted_close).quantize(CENT, rounding=ROUND_HALF_UP)
    return SplitOutcome(qty=whole, cost=kept_cost, fraction=fraction, cash_in_lieu=cash)


def dividend_amount(qty: Decimal, rate: Decimal) -> Decimal:
    """Cash paid for ``qty`` shares at ``rate`` per share, to the cent."""
    return (qty * rate).quantize(CENT, rounding=ROUND_HALF_UP)


class CorporateBook:
    """The corporate actions of the simulated market, by the instant they apply."""

    def __init__(self, actions: Iterable[CorporateAction] = ()) -> None:
        self.actions: tuple[CorporateAction, ...] = tuple(
            sorted(actions, key=lambda a: (a.ex_date, a.symbol, not a.is_split))
        )
        self.splits = SplitTable(self.actions)
        self._instants = sorted({new_york_midnight(a.ex_date) for a in self.actions})
        self._dividends: dict[str, list[CorporateAction]] = {}
        # the close before each dividend's ex-date, once that date has come (it never changes)
        self._closes: dict[CorporateAction, Decimal | None] = {}
        for action in self.actions:
            if not action.is_split:
                self._dividends.setdefault(action.symbol, []).append(action)

    def __bool__(self) -> bool:
        return bool(self.actions)

    def next_due(self, after: datetime) -> datetime | None:
        """The first instant strictly after ``after`` at which actions apply."""
        i = bisect.bisect_right(self._instants, after)
        return self._instants[i] if i < len(self._instants) else None

    def due_at(self, t: datetime) -> list[CorporateAction]:
        """The actions applying at ``t``: splits first, then dividends (on the new count)."""
        if t not in self._instants:
            return []
        day = new_york_date(t)
        return [a for a in self.actions if a.ex_date == day]

    def price_scale(self, symbol: str, price_date: date, as_of: date) -> Decimal:
        """What a raw price of ``price_date`` is divided by to be on ``as_of``'s scale."""
        return self.splits.factor(symbol, price_date, as_of)

    def dividends(self, symbol: str) -> list[CorporateAction]:
        """The symbol's cash dividends, by ex-date."""
        return self._dividends.get(symbol, [])

    def _dividend_multipliers(
        self, as_of: date, previous_close: Callable[[CorporateAction], Decimal | None]
    ) -> dict[str, list[tuple[date, Decimal]]]:
        """Per symbol, ``(ex_date, 1 - rate / previous close)`` of the dividends known on
        ``as_of``."""
        out: dict[str, list[tuple[date, Decimal]]] = {}
        for symbol, dividends in self._dividends.items():
            known = []
            for dividend in dividends:
                if dividend.ex_date > as_of:
                    continue  # not known yet
                if dividend not in self._closes:
                    self._closes[dividend] = previous_close(dividend)
                close = self._closes[dividend]
                if close is not None:
                    known.append((dividend.ex_date, dividend_multiplier(dividend.rate, close)))
            out[symbol] = known
        return out

    def bar_adjuster(
        self,
        adjustment: str,
        as_of: date,
        previous_close: Callable[[CorporateAction], Decimal | None],
    ) -> Callable[[SimBar], SimBar] | None:
        """Alpaca's ``adjustment`` of historical bars as known on ``as_of`` (None: raw).

        ``split``: prices divided, volumes multiplied by the ratios of the later splits;
        ``dividend``: prices multiplied by ``1 - rate / previous close`` of each later
        dividend; ``all``: both. Actions after ``as_of`` are not known yet.
        """
        if adjustment not in ADJUSTMENTS:
            raise ValueError(f"invalid adjustment: {adjustment!r}")
        use_splits = adjustment in ("split", "all") and bool(self.splits)
        use_dividends = adjustment in ("dividend", "all") and bool(self._dividends)
        if not use_splits and not use_dividends:
            return None
        multipliers = self._dividend_multipliers(as_of, previous_close) if use_dividends else {}
        split_symbols = self.splits.symbols() if use_splits else frozenset()

        def adjust(bar: SimBar) -> SimBar:
            if bar.symbol not in split_symbols and not multipliers.get(bar.symbol):
                return bar
            day = new_york_date(bar.t)
            scale = self.splits.factor(bar.symbol, day, as_of) if use_splits else Decimal(1)
            kept = Decimal(1)  # the share of the price left after later dividends
            for ex_date, multiplier in multipliers.get(bar.symbol, ()):
                if ex_date > day:
                    kept *= multiplier
            if scale == 1 and kept == 1:
                return bar
            divisor, times = float(scale), float(kept)
            return replace(
                bar,
                open=bar.open / divisor * times,
                high=bar.high / divisor * times,
                low=bar.low / divisor * times,
                close=bar.close / divisor * times,
                volume=round(bar.volume * divisor),
                vwap=None if bar.vwap is None else bar.vwap / divisor * times,
            )

        return adjust
