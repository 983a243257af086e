"""What a holding is worth: the last trade price of a symbol at an instant, on the share
scale of a given day (a price from before a split that has since applied is divided by it),
and an account's long market value."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from magellan_sim.exchange.account import Account
from magellan_sim.exchange.orders import ZERO
from magellan_sim.market.calendar import SessionCalendar, new_york_date, new_york_midnight
from magellan_sim.market.corporate import CorporateBook
from magellan_sim.market.tape import Tape

# A price re-scaled by a split (e.g. divided by 3) is kept to this many places.
SCALED_PRICE_STEP = Decimal("0.000001")


class Valuation:
    """Prices from the minute tape, re-scaled by the corporate actions."""

    def __init__(self, tape: Tape, corporate: CorporateBook, calendar: SessionCalendar) -> None:
        self.tape = tape
        self._corporate = corporate
        self._calendar = calendar

    def price(self, symbol: str, now: datetime, scale_at: datetime | None = None) -> Decimal | None:
        """The last trade price at ``now``, on the share scale of ``scale_at`` (default
        ``now``): a price from before a split that has since applied is divided by it."""
        bar = self.tape.latest_bar(symbol, now)
        if bar is None:
            return None
        price = Decimal(repr(bar.close))
        if self._corporate:
            as_of = new_york_date(scale_at or now)
            scale = self._corporate.price_scale(symbol, new_york_date(bar.t), as_of)
            if scale != 1:
                price = (price / scale).quantize(SCALED_PRICE_STEP)
        return price

    def long_market_value(self, account: Account, now: datetime) -> Decimal:
        """The account's positions at their last prices (at cost when none is known)."""
        total = ZERO
        for position in account.positions.values():
            price = self.price(position.symbol, now) or position.avg_entry_price
            total += position.qty * price
        return total

    def previous_close(self, symbol: str, t: datetime, ex_date: date) -> Decimal | None:
        """The last regular-session price before ``t``, on the share scale of ``ex_date``."""
        close = self._calendar.previous_close(t)
        if close is None:
            return None
        return self.price(symbol, close, new_york_midnight(ex_date))
