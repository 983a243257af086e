"""Emergency stops inside the daemon: losing trades in the ledger halt the strategy."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from magellan_daemon.app import Daemon
from magellan_daemon.domain import BrokerEvent, BrokerOrderId, ClientOrderId

T0 = datetime(2024, 11, 4, 15, 0, tzinfo=UTC)


def _round_trip(daemon: Daemon, day: int, buy: str, sell: str) -> None:
    ledger = daemon.ledger
    t = T0 + timedelta(days=day)
    for side, price in (("buy", buy), ("sell", sell)):
        cid = ClientOrderId(f"t{day}-{side}")
        ledger.create_order(
            client_order_id=cid,
            account="main",
            strategy="daily_trend",
            symbol="SPY",
            side=side,
            order_type="market",
            qty=Decimal(10),
            stop_price=None,
            time_in_force="day",
            leg="entry" if side == "buy" else "exit",
            signal_time=t,
            intent_id=None,
            replaces=None,
            now=t,
        )
        ledger.apply_event(
            BrokerEvent(
                event="fill",
                client_order_id=cid,
                broker_order_id=BrokerOrderId(f"b-{cid}"),
                ts_event=t + timedelta(minutes=5 if side == "buy" else 60),
                source="stream",
                cum_filled_qty=Decimal(10),
                price=Decimal(price),
            )
        )


def test_losing_streak_halts_the_strategy_loudly(daemon: Daemon, caplog) -> None:
    for day in range(4):
        _round_trip(daemon, day, "100", "99")
    daemon.check_emergency("daily_trend")
    assert daemon.ledger.halted("daily_trend") is None  # 4 losing days: not yet
    _round_trip(daemon, 4, "100", "99")
    with caplog.at_level(logging.WARNING):
        daemon.check_emergency("daily_trend")
    reason = daemon.ledger.halted("daily_trend")
    assert reason is not None and reason.startswith("emergency stop:")
    assert any(
        r.levelno >= logging.ERROR and "EMERGENCY STOP daily_trend" in r.getMessage()
        for r in caplog.records
    )
    assert daemon.ledger.halted("hourly_swing") is None  # only the strategy that lost


def test_winning_trades_do_not_halt(daemon: Daemon) -> None:
    for day in range(6):
        _round_trip(daemon, day, "100", "101")
    daemon.check_emergency("daily_trend")
    assert daemon.ledger.halted("daily_trend") is None
