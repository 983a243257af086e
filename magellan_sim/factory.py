"""Build a simulator exchange (clock, calendar, market, exchange) from plain options.

Shared by ``magellan sim`` and the daemon's embedded simulator so both start the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from magellan_core.clock import VirtualClock
from magellan_core.corporate_actions import (
    CorporateAction,
    corporate_actions_path,
    load_corporate_actions,
)
from magellan_sim.exchange.exchange import Exchange
from magellan_sim.exchange.faults import Faults
from magellan_sim.market.calendar import NEW_YORK, SessionCalendar, new_york_date
from magellan_sim.market.market import MarketData

# 09:25 New York on a session inside the shared data's minute coverage (which ends
# 2025-01-17): five minutes before the open, so a client connects before the first bar.
DEFAULT_START = datetime(2025, 1, 16, 9, 25, tzinfo=NEW_YORK).astimezone(UTC)
SYNTHETIC_SESSIONS_BEFORE_START = 5
SYNTHETIC_SESSIONS_AFTER_START = 30
# Minute bars of 10,000 symbols take about 25 MB per session: the made-up ones get two.
SYNTHETIC_EXTRA_SESSIONS = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class SimOptions:
    """What a simulator is made of; every field has the ``magellan sim`` default."""

    bars_dir: Path | None = None
    start: datetime = DEFAULT_START
    speed: float = 1.0
    seed: int = 0
    cash: Decimal = Decimal(100_000)
    slippage_bps: float = 0.0
    cancel_latency: float = 2.0  # virtual seconds from DELETE to canceled (0: at once)
    replace_latency: float = 2.0  # virtual seconds from PATCH to replaced (0: at once)
    wash_trade_check: bool = True
    synthetic_symbols: int = 0  # made-up small caps on top of the synthetic market
    # the corporate-actions file; None: ``bars_dir/../corporate_actions.csv`` when present
    corporate_actions: Path | None = None


def corporate_actions_of(options: SimOptions) -> tuple[CorporateAction, ...]:
    """The options' corporate actions (``CorporateActionsFileError`` for a bad file)."""
    if options.bars_dir is None:
        path = options.corporate_actions
    else:
        path = corporate_actions_path(options.bars_dir, options.corporate_actions)
    return load_corporate_actions(path) if path is not None else ()


def build_exchange(options: SimOptions, clock: VirtualClock | None = None) -> Exchange:
    """An ``Exchange`` on real bars (``bars_dir``) or the seeded synthetic market, with the
    corporate actions of ``corporate_actions_of(options)``."""
    actions = corporate_actions_of(options)
    calendar = SessionCalendar()
    clock = clock or VirtualClock(options.start, options.speed)
    if options.bars_dir is not None:
        market = MarketData.from_dir(options.bars_dir, calendar)
    else:
        day = new_york_date(options.start)
        # a few sessions of minute bars before the start, so "latest bar/trade/quote" and
        # intraday history exist from the first request on
        before = calendar.sessions_before(day, SYNTHETIC_SESSIONS_BEFORE_START)
        after = calendar.sessions_from(day, SYNTHETIC_SESSIONS_AFTER_START)
        first = before[0].date if before else day
        end = after[-1].date if after else day
        extra = None
        if options.synthetic_symbols:
            extra = (options.synthetic_symbols, day, SYNTHETIC_EXTRA_SESSIONS)
        market = MarketData.synthetic(options.seed, None, first, end, calendar, extra)
    return Exchange(
        clock,
        market,
        calendar,
        cash=options.cash,
        slippage_bps=options.slippage_bps,
        faults=Faults(seed=options.seed),
        wash_trade_check=options.wash_trade_check,
        cancel_latency=options.cancel_latency,
        replace_latency=options.replace_latency,
        corporate_actions=actions,
    )
