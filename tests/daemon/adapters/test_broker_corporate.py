"""The broker adapter's corporate-action reads and adjusted bars, against the simulator
over loopback with the real alpaca-py clients (the shared bars and corporate-actions file).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import pytest_asyncio

from magellan_core.corporate_actions import CorporateAction, load_corporate_actions
from magellan_daemon.adapters.alpaca.corporate import actions_from_set, activity_from_json
from magellan_sim.server.server import SimServer
from tests.daemon.adapters.sim_at import broker_at, sim_at

AFTER_SPLIT = datetime(2024, 6, 10, 15, 0, tzinfo=UTC)  # 11:00 ET on NVDA's ex-date


@pytest_asyncio.fixture
async def server(bars_dir: Path) -> AsyncIterator[SimServer]:
    actions = load_corporate_actions(bars_dir.parent / "corporate_actions.csv")
    async with sim_at(bars_dir, AFTER_SPLIT, actions) as sim:
        yield sim


async def test_bars_are_asked_for_split_adjusted(server: SimServer) -> None:
    start, end = datetime(2024, 6, 6, tzinfo=UTC), AFTER_SPLIT
    adjusted = (await broker_at(server).bars(["NVDA"], "1Day", start, end))["NVDA"]
    raw = (await broker_at(server, adjustment="raw").bars(["NVDA"], "1Day", start, end))["NVDA"]
    friday = datetime(2024, 6, 7, tzinfo=UTC).date()
    (adj,) = [b for b in adjusted if b.t.date() == friday]
    (unadjusted,) = [b for b in raw if b.t.date() == friday]
    assert unadjusted.close == pytest.approx(1207.75)  # Alpaca's default would be this
    assert adj.close == pytest.approx(120.775)
    assert adj.volume == pytest.approx(unadjusted.volume * 10)


async def test_corporate_actions_are_read_as_the_file_says(server: SimServer) -> None:
    got = await broker_at(server).corporate_actions(
        ["NVDA", "WKHS", "AAPL"], date(2024, 6, 1), date(2024, 6, 30)
    )
    assert got == [
        CorporateAction(
            "NVDA", "forward_split", date(2024, 6, 10), Decimal(10), Decimal(1), Decimal(0)
        ),
        CorporateAction(
            "WKHS", "reverse_split", date(2024, 6, 17), Decimal(1), Decimal(20), Decimal(0)
        ),
    ]


def test_a_dividend_and_a_cash_in_lieu_activity_convert() -> None:
    actions = actions_from_set(
        {
            "cash_dividends": [
                {"symbol": "SPY", "rate": 1.7588, "ex_date": "2024-06-21", "special": False}
            ],
            "forward_splits": [
                {"symbol": "NVDA", "new_rate": 10.0, "old_rate": 1.0, "ex_date": "2024-06-10"}
            ],
            "stock_mergers": [{"acquirer_symbol": "X"}],  # not read
        }
    )
    assert [(a.symbol, a.type, a.rate, a.ratio) for a in actions] == [
        ("NVDA", "forward_split", Decimal(0), Decimal(10)),
        ("SPY", "cash_dividend", Decimal("1.7588"), Decimal(1)),
    ]
    cil = activity_from_json(
        {
            "activity_type": "CIL",
            "date": "2024-06-17",
            "symbol": "WKHS",
            "qty": "0.3",
            "net_amount": "0.9006",
        }
    )
    assert (cil.symbol, cil.qty, cil.net_amount) == ("WKHS", Decimal("0.3"), Decimal("0.9006"))
    with pytest.raises(ValueError):
        actions_from_set(
            {
                "forward_splits": [
                    {"symbol": "X", "new_rate": 0, "old_rate": 1, "ex_date": "2024-06-10"}
                ]
            }
        )
