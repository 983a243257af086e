"""The adapter tests' simulator (the shared bars, a frozen virtual clock) and the broker
adapter pointed at it over loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

from magellan_core.clock import VirtualClock
from magellan_core.corporate_actions import CorporateAction
from magellan_daemon.adapters.alpaca.rest import AlpacaBroker
from magellan_sim.exchange.exchange import Exchange
from magellan_sim.market.calendar import SessionCalendar
from magellan_sim.market.market import MarketData
from magellan_sim.server.server import SimServer

KEY, SECRET = "adapter-key", "adapter-secret"


@asynccontextmanager
async def sim_at(
    bars_dir: Path, now: datetime, actions: Sequence[CorporateAction] = ()
) -> AsyncIterator[SimServer]:
    """A simulator on the shared bars with its clock stopped at ``now``."""
    calendar = SessionCalendar()
    market = MarketData.from_dir(bars_dir, calendar)
    exchange = Exchange(
        VirtualClock(now, speed=0), market, calendar, corporate_actions=tuple(actions)
    )
    sim = SimServer(exchange, port=0, key=KEY, secret=SECRET)
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


def broker_at(
    server: SimServer, *, secret: str = SECRET, adjustment: str = "split"
) -> AlpacaBroker:
    """The broker adapter on ``server`` (trading and market data)."""
    return AlpacaBroker(
        account="main",
        key=KEY,
        secret=secret,
        paper=True,
        trading_url=server.url,
        data_url=server.url,
        adjustment=adjustment,
    )
