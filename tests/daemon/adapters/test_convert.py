"""The broker edge: raw trade-update frames to BrokerEvents (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from magellan_daemon.adapters.alpaca.convert import event_from_trade_update

ORDER = {
    "id": "61e69015-8549-4bfd-b9c3-01e75843f47d",
    "client_order_id": "mg-bt-AMC-20241210T1431-ps-1",
    "symbol": "AMC",
    "side": "sell",
    "status": "new",
    "filled_qty": "0",
    "filled_avg_price": None,
    "updated_at": "2024-12-10T14:31:00Z",
}


def test_fill_frame_with_nanoseconds() -> None:
    event = event_from_trade_update(
        {
            "event": "fill",
            "timestamp": "2024-05-01T14:31:02.123456789Z",
            "execution_id": "2f63ea93-423d-4169-b3f6-3fdafc10c418",
            "price": "170.49",
            "qty": "10",
            "order": {
                **ORDER,
                "status": "filled",
                "filled_qty": "10",
                "filled_avg_price": "170.49",
            },
        }
    )
    assert event.event == "fill"
    assert event.ts_event == datetime(2024, 5, 1, 14, 31, 2, 123456, tzinfo=UTC)
    assert (event.cum_filled_qty, event.price, event.qty) == (
        Decimal(10),
        Decimal("170.49"),
        Decimal(10),
    )


@pytest.mark.parametrize("refused", ["order_replace_rejected", "order_cancel_rejected"])
def test_a_refused_replace_or_cancel_reports_the_orders_own_status(refused: str) -> None:
    event = event_from_trade_update(
        {"event": refused, "timestamp": "2024-12-10T14:31:01Z", "order": ORDER}
    )
    assert (event.event, event.order_status) == (refused, "new")


def test_a_frame_without_an_order_is_refused() -> None:
    with pytest.raises((KeyError, TypeError)):
        event_from_trade_update({"event": "fill", "timestamp": "2024-12-10T14:31:01Z"})
