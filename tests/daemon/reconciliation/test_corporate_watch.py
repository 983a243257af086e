"""The corporate-actions watch against the simulator (real alpaca-py over loopback, a real
SQLite ledger, virtual time): a cash dividend whose ex-date passed while the daemon was down
is booked at the next startup, as the broker credited it (to the shares held at the start of
the ex-date), once."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from magellan_core.corporate_actions import CorporateAction
from magellan_daemon.reconciliation.corporate_watch import CorporateActionWatch
from tests.daemon.execution.test_order_path import NOW, _hold, _intent, _run
from tests.daemon.stack import Stack, order_stack

EX = date(2024, 12, 11)
DIVIDEND = CorporateAction("AMC", "cash_dividend", EX, Decimal(1), Decimal(1), Decimal("0.05"))


def _watch(stack: Stack, watched: set[str] | None = None) -> CorporateActionWatch:
    universe = {"main": watched or set()}  # empty: a whole-market strategy watches none
    return CorporateActionWatch(
        ledger=stack.ledger,
        path=stack.path,
        clock=stack.clock,
        runners={},
        watched=lambda: universe,
    )


async def test_a_dividend_missed_while_down_is_booked_to_the_holders_of_its_ex_date(
    bars_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Bear Trap buys 100 AMC on the 10th and sells 40 on the ex-date (the 11th) after the
    open; the daemon is down over the ex-date's pre-open, and starts again on the 12th: the
    dividend the broker paid on the 100 shares held at 00:00 of the 11th is booked to Bear
    Trap, for 100 shares (not the 60 held now), once."""
    async with order_stack(bars_dir, tmp_path, NOW, corporate_actions=[DIVIDEND]) as stack:
        await _hold(stack, stop=None)
        held = int(stack.ledger.position_qty("bear_trap", "AMC"))
        assert held == 100
        stack.clock.set(datetime(2024, 12, 11, 15, 0, 20, tzinfo=UTC))  # 10:00 ET, ex-date
        await stack.advance(1)  # the dividend was paid at 00:00
        sell = _intent("sell", "exit", 40, signal_time=datetime(2024, 12, 11, 14, 59, tzinfo=UTC))
        await _run(stack, [sell])
        await stack.advance(120)
        await stack.until(lambda: stack.ledger.position_qty("bear_trap", "AMC") == 60, "the sell")
        paid = await stack.broker.activities("DIV", datetime(2024, 12, 10, tzinfo=UTC))
        assert [(a.symbol, a.qty, a.net_amount) for a in paid] == [("AMC", 100, Decimal(5))]

        sold = stack.ledger.realized_on("bear_trap", EX)  # the sell's P&L
        stack.clock.set(datetime(2024, 12, 12, 13, 0, tzinfo=UTC))  # the next day's startup
        watch = _watch(stack)
        with caplog.at_level(logging.INFO):
            assert await watch.catch_up()
        (booking,) = stack.ledger.corporate_bookings("bear_trap")
        assert (booking.kind, booking.ex_date, booking.qty_before, booking.cash) == (
            "cash_dividend",
            EX,
            100,
            5,
        )
        assert stack.ledger.realized_on("bear_trap", EX) == sold + 5
        assert any(
            "dividend AMC" in r.message and "caught up" in r.message and "booked" in r.message
            for r in caplog.records
        )
        assert await watch.catch_up()  # a second startup books nothing more
        assert len(stack.ledger.corporate_bookings()) == 1
        assert stack.ledger.position_qty("bear_trap", "AMC") == 60


async def test_a_dividend_of_shares_sold_before_the_restart_is_booked_to_their_holder(
    bars_dir: Path, tmp_path: Path
) -> None:
    """Bear Trap (a universe without AMC, as a whole-market strategy's is) buys 100 AMC on
    the 10th and sells all of it on the ex-date after the open; the daemon starts again on
    the 12th, when AMC is neither watched, held nor ordered: the dividend the broker paid on
    the 100 shares is still booked to Bear Trap, once (its fills since the look-back's start
    name AMC)."""
    async with order_stack(bars_dir, tmp_path, NOW, corporate_actions=[DIVIDEND]) as stack:
        await _hold(stack, stop=None)
        assert stack.ledger.position_qty("bear_trap", "AMC") == 100
        stack.clock.set(datetime(2024, 12, 11, 15, 0, 20, tzinfo=UTC))  # 10:00 ET, ex-date
        await stack.advance(1)
        sell = _intent("sell", "exit", 100, signal_time=datetime(2024, 12, 11, 14, 59, tzinfo=UTC))
        await _run(stack, [sell])
        await stack.advance(120)
        await stack.until(lambda: stack.ledger.position_qty("bear_trap", "AMC") == 0, "the sell")
        paid = await stack.broker.activities("DIV", datetime(2024, 12, 10, tzinfo=UTC))
        assert [(a.symbol, a.qty, a.net_amount) for a in paid] == [("AMC", 100, Decimal(5))]
        assert not stack.ledger.positions() and not stack.ledger.orders(open_only=True)

        sold = stack.ledger.realized_on("bear_trap", EX)  # the sell's P&L
        stack.clock.set(datetime(2024, 12, 12, 13, 0, tzinfo=UTC))  # the next day's startup
        watch = _watch(stack, watched={"GME"})
        assert await watch.catch_up()
        (booking,) = stack.ledger.corporate_bookings("bear_trap")
        assert (booking.kind, booking.ex_date, booking.qty_before, booking.cash) == (
            "cash_dividend",
            EX,
            100,
            5,
        )
        assert stack.ledger.realized_on("bear_trap", EX) == sold + 5
        assert await watch.catch_up()  # a second startup books nothing more
        assert len(stack.ledger.corporate_bookings()) == 1
