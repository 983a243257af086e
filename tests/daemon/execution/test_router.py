"""The order router against the simulator over loopback (real alpaca-py, real SQLite).

The "unknown submit" paths: a crash between the ledger write and the POST, a POST the broker
accepted but whose answer was lost (a timeout), and 503s. In every case the order exists at
the broker at most once, and nothing is ever re-sent blind.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from magellan_daemon.domain import client_order_id
from strategies.api.model import FixedDollars, Intent
from tests.daemon.stack import Stack, order_stack

NOW = datetime(2024, 12, 10, 15, 0, tzinfo=UTC)  # 10:00 ET, session open


@pytest.fixture
async def setup(
    bars_dir: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Stack]:
    timeout = getattr(request, "param", 5.0)  # the HTTP timeout, parametrised indirectly
    async with order_stack(bars_dir, tmp_path, NOW, timeout=timeout, stream=False) as stack:
        yield stack


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


async def test_entry_is_sent_once_with_the_derived_client_order_id(setup: Stack) -> None:
    await setup.router.execute([_entry()])
    await setup.router.execute([_entry()])  # the same intent again: not sent twice
    orders = setup.broker_orders()
    assert [o["client_order_id"] for o in orders] == [
        client_order_id("bear_trap", "AMC", NOW - timedelta(minutes=1), "entry")
    ]
    assert orders[0]["qty"] == "250"
    assert setup.ledger.order(orders[0]["client_order_id"]).status in ("new", "accepted")


async def test_crash_before_the_post_is_never_sent_blind(setup: Stack) -> None:
    cid = setup.order_row("mg-bt-AMC-test-entry").client_order_id
    # ... and the process died before the HTTP call: a definite 404 by client_order_id
    assert await setup.recovery.resolve_unacked("main") == 1
    assert setup.broker_orders() == []
    assert setup.ledger.order(cid).status == "not_found"
    assert [(u.leg, u.kind) for u in setup.updates] == [("entry", "rejected")]  # decide again
    assert await setup.recovery.resolve_unacked("main") == 0  # known now: nothing to do


@pytest.mark.parametrize("setup", [0.3], indirect=True)
async def test_timed_out_submit_is_looked_up_and_never_sent_blind(setup: Stack) -> None:
    row = setup.order_row("mg-bt-AMC-timeout-entry")
    setup.exchange.faults.update(latency_ms=600)  # every answer comes after our timeout
    await setup.path.send(row)
    # The lookups timed out as well: it may exist, so it was never POSTed again.
    assert setup.ledger.order(row.client_order_id).status == "unknown"
    assert setup.broker_orders() == []  # (the simulator drops a request whose client left)
    setup.exchange.faults.update(latency_ms=0)
    await setup.recovery.resolve_unacked("main")
    assert setup.ledger.order(row.client_order_id).status == "not_found"
    assert setup.broker_orders() == []
    assert [(u.leg, u.kind) for u in setup.updates] == [("entry", "rejected")]


async def test_503s_leave_the_order_unknown_until_resolved_once(setup: Stack) -> None:
    row = setup.order_row("mg-bt-AMC-503-entry")
    setup.exchange.faults.update(http_error_rate=1.0, http_status=503)
    await setup.path.send(row)
    assert setup.broker_orders() == []
    assert setup.ledger.order(row.client_order_id).status == "unknown"
    setup.exchange.faults.update(http_error_rate=0.0)
    await setup.path.send(setup.ledger.order(row.client_order_id))  # looked up first: 404
    await setup.recovery.resolve_unacked("main")
    assert [o["client_order_id"] for o in setup.broker_orders()] == [row.client_order_id]


async def test_entries_that_cannot_be_sent_are_reported_to_the_strategy(setup: Stack) -> None:
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


async def test_sell_never_exceeds_the_strategys_own_shares(setup: Stack) -> None:
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
    assert "nothing to sell" in setup.updates[-1].reason
