"""Reconciliation against the simulator while a lane keeps trading (issue 17).

The set of our orders was built from a ledger read taken before the broker snapshot; an
order a lane wrote and sent during the snapshot's awaits was at the broker but not in that
read, and was reported as a foreign-order DISCREPANCY. Foreign-ness is judged against the
ledger as it is after the snapshot.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from tests.daemon.stack import KEY, order_stack

NOW = datetime(2024, 12, 10, 15, 0, 20, tzinfo=UTC)  # 10:00:20 ET, a regular session


async def test_an_order_sent_while_the_snapshot_is_read_is_ours(
    bars_dir: Path, tmp_path: Path
) -> None:
    async with order_stack(bars_dir, tmp_path, NOW, stream=False) as stack:
        # The snapshot's first read (GET /v2/orders) reaches the simulator's handler only
        # after this network delay; the reconciliation reads the ledger before sending it.
        stack.exchange.faults.update(latency_ms=400)
        task = asyncio.ensure_future(stack.recovery.reconcile("main"))
        for _ in range(3):  # the reconciliation runs to its first await: the ledger is read
            await asyncio.sleep(0)
        # A lane writes its order row and the broker accepts it, while the GET is in flight.
        row = stack.order_row("mg-bt-AMC-20241210T1459-entry", qty=10)
        stack.exchange.orders.submit_order(
            KEY,
            symbol="AMC",
            qty=Decimal(10),
            notional=None,
            side="buy",
            type="market",
            time_in_force="day",
            limit_price=None,
            stop_price=None,
            client_order_id=row.client_order_id,
            extended_hours=False,
        )
        await asyncio.wait_for(task, 20)
        stack.exchange.faults.update(latency_ms=0)
        assert [o["client_order_id"] for o in stack.broker_orders()] == [row.client_order_id]
        assert stack.ledger.discrepancies() == []
