"""The order router against the simulator over loopback (real alpaca-py, real SQLite).

The "unknown submit" paths: a crash between the ledger write and the POST, a POST the broker
accepted but whose answer was lost (a timeout), and 503s. In every case the order exists at
the broker exactly once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from magellan_daemon.broker.rest import AlpacaBroker
from magellan_daemon.clock import VirtualClock
from magellan_daemon.domain import ClientOrderId, client_order_id
from magellan_daemon.events import EventSink
from magellan_daemon.ledger.store import Ledger
from magellan_daemon.router import OrderRouter, StrategyRouting
from magellan_daemon.sim.calendar import SessionCalendar
from magellan_daemon.sim.exchange import Exchange
from magellan_daemon.sim.market import MarketData
from magellan_daemon.sim.server import SimServer
from strategies.model import FixedDollars, Intent, OrderUpdate
from strategies.params import RiskLimits

KEY, SECRET = "router-key", "router-secret"
NOW = datetime(2024, 12, 10, 15, 0, tzinfo=UTC)  # 10:00 ET, session open
LIMITS = RiskLimits(
    max_open_positions=5, max_position_dollars=50_000, max_daily_loss_dollars=10_000
)


class Setup:
    def __init__(
        self, server: SimServer, ledger: Ledger, clock: VirtualClock, timeout: float
    ) -> None:
        self.server = server
        self.exchange = server.exchange
        self.ledger = ledger
        self.updates: list[OrderUpdate] = []

        async def notify(strategy: str, update: OrderUpdate) -> None:
            self.updates.append(update)

        self.sink = EventSink(ledger, ledger.path.parent / "trades", notify)
        self.broker = AlpacaBroker(
            account="main",
            key=KEY,
            secret=SECRET,
            paper=True,
            trading_url=server.url,
            data_url=server.url,
            timeout_seconds=timeout,
        )
        self.router = OrderRouter(
            ledger=ledger,
            brokers={"main": self.broker},
            sink=self.sink,
            clock=clock,
            routing={"bear_trap": StrategyRouting(account="main", limits=LIMITS)},
            backoff_seconds=0.01,
        )

    def broker_orders(self) -> list[dict]:
        return self.exchange.list_orders(KEY, status="all", limit=500)


@pytest.fixture
async def setup(
    bars_dir: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Setup]:
    clock = VirtualClock(NOW, speed=0)
    market = MarketData.from_dir(bars_dir, SessionCalendar())
    server = SimServer(Exchange(clock, market, market.calendar), port=0)
    await server.start()
    ledger = Ledger.open(tmp_path / "ledger.sqlite")
    timeout = getattr(request, "param", 5.0)  # the HTTP timeout, parametrised indirectly
    s = Setup(server, ledger, clock, timeout)
    try:
        yield s
    finally:
        s.broker.close()
        ledger.close()
        await server.stop()


def _entry(qty_dollars: float = 1000.0) -> Intent:
    return Intent(
        strategy="bear_trap",
        symbol="AMC",
        action="buy",
        leg="entry",
        signal_time=NOW - timedelta(minutes=1),
        reason="test",
        sizing=FixedDollars(dollars=qty_dollars, price=4.0),
    )


def _row(setup: Setup, cid: str):
    return setup.ledger.create_order(
        client_order_id=ClientOrderId(cid),
        account="main",
        strategy="bear_trap",
        symbol="AMC",
        side="buy",
        order_type="market",
        qty=Decimal(10),
        stop_price=None,
        time_in_force="day",
        leg="entry",
        signal_time=NOW,
        intent_id=None,
        replaces=None,
        now=NOW,
    )


async def test_entry_is_sent_once_with_the_derived_client_order_id(setup: Setup) -> None:
    await setup.router.execute([_entry()])
    await setup.router.execute([_entry()])  # the same intent again: not sent twice
    orders = setup.broker_orders()
    assert [o["client_order_id"] for o in orders] == [
        client_order_id("bear_trap", "AMC", NOW - timedelta(minutes=1), "entry")
    ]
    assert orders[0]["qty"] == "250"
    assert setup.ledger.order(orders[0]["client_order_id"]).status in ("new", "accepted")


async def test_crash_before_the_post_is_resent_once(setup: Setup) -> None:
    cid = _row(setup, "mg-bt-AMC-test-entry").client_order_id
    # ... and the process died before the HTTP call
    assert await setup.router.resolve_unacked("main") == 1
    assert [o["client_order_id"] for o in setup.broker_orders()] == [cid]
    assert await setup.router.resolve_unacked("main") == 0  # now known: nothing to do
    assert len(setup.broker_orders()) == 1


@pytest.mark.parametrize("setup", [0.3], indirect=True)
async def test_timed_out_submit_is_looked_up_not_duplicated(setup: Setup) -> None:
    row = _row(setup, "mg-bt-AMC-timeout-entry")
    setup.exchange.faults.update(latency_ms=600)  # every answer comes after our timeout
    await setup.router.send(row)
    assert setup.ledger.order(row.client_order_id).status == "unknown"
    setup.exchange.faults.update(latency_ms=0)
    await setup.router.resolve_unacked("main")
    orders = setup.broker_orders()
    assert [o["client_order_id"] for o in orders] == [row.client_order_id]
    assert setup.ledger.order(row.client_order_id).broker_order_id == orders[0]["id"]


async def test_503s_leave_the_order_unknown_until_resolved_once(setup: Setup) -> None:
    row = _row(setup, "mg-bt-AMC-503-entry")
    setup.exchange.faults.update(http_error_rate=1.0, http_status=503)
    await setup.router.send(row)
    assert setup.broker_orders() == []
    setup.exchange.faults.update(http_error_rate=0.0)
    await setup.router.resolve_unacked("main")
    await setup.router.resolve_unacked("main")
    assert [o["client_order_id"] for o in setup.broker_orders()] == [row.client_order_id]


async def test_entries_that_cannot_be_sent_are_reported_to_the_strategy(setup: Setup) -> None:
    sized_to_zero = Intent(
        strategy="bear_trap",
        symbol="GME",
        action="buy",
        leg="entry",
        signal_time=NOW,
        reason="t",
        sizing=FixedDollars(dollars=1, price=30),
    )
    await setup.router.execute([sized_to_zero])
    setup.exchange.faults.update(http_error_rate=1.0, http_status=503)
    await setup.router.execute([_entry()])  # the account cannot even be read
    setup.exchange.faults.update(http_error_rate=0.0)
    assert setup.broker_orders() == []
    assert [(u.symbol, u.kind, u.order_qty) for u in setup.updates] == [
        ("GME", "rejected", 0),
        ("AMC", "rejected", 0),
    ]


async def test_sell_never_exceeds_the_strategys_own_shares(setup: Setup) -> None:
    sell = Intent(
        strategy="bear_trap",
        symbol="AMC",
        action="sell",
        leg="eod",
        signal_time=NOW,
        reason="t",
        qty=100,
    )
    await setup.router.execute([sell])
    assert setup.broker_orders() == []  # holds nothing: nothing sent
    assert setup.updates[-1].kind == "rejected"
