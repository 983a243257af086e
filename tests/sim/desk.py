"""A stepped exchange for the core tests: submit with Alpaca's defaults, record every trade
update, move the clock. Imported by the ``test_core_*`` modules (pytest puts this directory
on ``sys.path``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from magellan_core.clock import VirtualClock
from magellan_sim.exchange.exchange import Exchange
from magellan_sim.market.market import MarketData

KEY = "core-key"
# 2024-12-10 (EST): the session opens 14:30Z and closes 21:00Z.
OPEN = datetime(2024, 12, 10, 14, 30, tzinfo=UTC)
CLOSE = datetime(2024, 12, 10, 21, 0, tzinfo=UTC)


def at(hour: int, minute: int, second: int = 0) -> datetime:
    """An instant on 2024-12-10 (UTC)."""
    return datetime(2024, 12, 10, hour, minute, second, tzinfo=UTC)


@dataclass
class Desk:
    """An exchange on a stepped clock, recording every trade update."""

    exchange: Exchange
    clock: VirtualClock
    events: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def start(cls, market: MarketData, when: datetime, **kwargs: Any) -> Desk:
        """A fresh exchange at ``when``."""
        clock = VirtualClock(when, speed=0)
        desk = cls(Exchange(clock, market, market.calendar, **kwargs), clock)
        desk.exchange.add_listener(lambda key, message: desk.events.append(message["data"]))
        return desk

    def to(self, when: datetime) -> None:
        """Move the clock to ``when`` and let the exchange catch up."""
        self.clock.set(when)
        self.exchange.advance()

    def order(self, symbol: str = "AMC", qty: str | None = "100", **fields: Any) -> dict:
        """Submit with Alpaca's defaults (market day buy)."""
        params: dict[str, Any] = {
            "symbol": symbol,
            "qty": None if qty is None else Decimal(qty),
            "notional": None,
            "side": "buy",
            "type": "market",
            "time_in_force": "day",
            "limit_price": None,
            "stop_price": None,
            "client_order_id": None,
            "extended_hours": False,
        }
        params.update(fields)
        return self.exchange.orders.submit_order(KEY, **params)

    def event_names(self, order_id: str | None = None) -> list[str]:
        """Event names so far (of one order if given)."""
        return [e["event"] for e in self.events if order_id in (None, e["order"]["id"])]
