"""Corporate actions in the ledger (a real SQLite file): a split scales every strategy's
position once, books cash in lieu, survives a rebuild from fills; a dividend is P&L."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from magellan_core.corporate_actions import CorporateAction
from magellan_daemon.domain import BrokerEvent, BrokerOrderId, ClientOrderId
from magellan_daemon.ledger import corporate
from magellan_daemon.ledger.store import Ledger
from strategies.api.model import FixedDollars, Intent

T0 = datetime(2024, 6, 7, 15, 0, tzinfo=UTC)  # the Friday before NVDA's split
EX = date(2024, 6, 10)
PRE_OPEN = datetime(2024, 6, 10, 13, 0, tzinfo=UTC)
NVDA_10_FOR_1 = CorporateAction("NVDA", "forward_split", EX, Decimal(10), Decimal(1), Decimal(0))


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    led = Ledger.open(tmp_path / "ledger.sqlite")
    yield led
    led.close()


def _fill(
    ledger: Ledger,
    cid: str,
    strategy: str,
    side: str,
    qty: int,
    price: str,
    now: datetime = T0,
    symbol: str = "NVDA",
    account: str = "main",
) -> None:
    ledger.create_order(
        client_order_id=ClientOrderId(cid),
        account=account,
        strategy=strategy,
        symbol=symbol,
        side=side,
        order_type="market",
        qty=Decimal(qty),
        stop_price=None,
        time_in_force="day",
        leg="entry" if side == "buy" else "exit",
        signal_time=now,
        intent_id=None,
        replaces=None,
        now=now,
    )
    ledger.apply_event(
        BrokerEvent(
            event="fill",
            client_order_id=ClientOrderId(cid),
            broker_order_id=BrokerOrderId(f"b-{cid}"),
            ts_event=now + timedelta(seconds=1),
            source="stream",
            cum_filled_qty=Decimal(qty),
            price=Decimal(price),
        )
    )


def test_a_forward_split_scales_each_strategy_once(tmp_path: Path) -> None:
    ledger = Ledger.open(tmp_path / "ledger.sqlite")
    _fill(ledger, "hs", "hourly_swing", "buy", 41, "1200")
    _fill(ledger, "dt", "daily_trend", "buy", 8, "1150")
    bookings = ledger.apply_split(NVDA_10_FOR_1, PRE_OPEN)
    assert {(b.strategy, b.qty_before, b.qty_after, b.cash) for b in bookings} == {
        ("hourly_swing", 41, 410, 0),
        ("daily_trend", 8, 80, 0),
    }
    assert ledger.position_qty("hourly_swing", "NVDA") == 410
    assert ledger.net_positions("main") == {"NVDA": Decimal(490)}
    (hs,) = ledger.positions("hourly_swing")
    assert hs.avg_price == 120
    assert ledger.apply_split(NVDA_10_FOR_1, PRE_OPEN) is None  # once, however often asked
    ledger.close()
    reopened = Ledger.open(tmp_path / "ledger.sqlite")  # a restart after it was applied
    assert reopened.corporate_action_applied("NVDA", EX, "split")
    assert reopened.apply_split(NVDA_10_FOR_1, PRE_OPEN) is None
    assert reopened.position_qty("hourly_swing", "NVDA") == 410
    reopened.close()


def test_the_exit_after_the_split_closes_the_trade_at_the_new_scale(ledger: Ledger) -> None:
    _fill(ledger, "hs", "hourly_swing", "buy", 41, "1200")
    ledger.apply_split(NVDA_10_FOR_1, PRE_OPEN)
    _fill(ledger, "x", "hourly_swing", "sell", 410, "125", now=PRE_OPEN + timedelta(days=11))
    assert ledger.position_qty("hourly_swing", "NVDA") == 0
    (trade,) = ledger.closed_trades("hourly_swing")
    assert (trade["qty"], Decimal(trade["entry_price"]), trade["exit_price"]) == ("410", 120, "125")
    assert Decimal(trade["pnl"]) == 410 * 5


def test_a_reverse_split_books_cash_in_lieu_shared_by_the_fractions(ledger: Ledger) -> None:
    one_for_20 = CorporateAction(
        "WKHS", "reverse_split", date(2024, 6, 17), Decimal(1), Decimal(20), Decimal(0)
    )
    _fill(ledger, "a", "daily_trend", "buy", 30, "0.50", symbol="WKHS")  # 1.5 new shares
    _fill(ledger, "b", "hourly_swing", "buy", 30, "0.40", symbol="WKHS")  # 1.5 new shares
    # The account had 60 -> 3 shares: one strategy gets its half share rounded up.
    bookings = {
        b.strategy: b for b in ledger.apply_split(one_for_20, PRE_OPEN, {"main": Decimal(0)})
    }
    assert sum(b.qty_after for b in bookings.values()) == 3
    assert {b.qty_after for b in bookings.values()} == {1, 2}


def test_cash_in_lieu_of_a_reverse_split_is_realised_p_and_l(ledger: Ledger) -> None:
    one_for_20 = CorporateAction(
        "WKHS", "reverse_split", date(2024, 6, 17), Decimal(1), Decimal(20), Decimal(0)
    )
    _fill(ledger, "a", "daily_trend", "buy", 50, "0.50", symbol="WKHS")  # 2.5 new shares
    (booking,) = ledger.apply_split(one_for_20, PRE_OPEN, {"main": Decimal("6.00")})
    assert (booking.qty_after, booking.avg_after, booking.cash) == (2, 10, 6)
    assert booking.realized == 1  # half a share bought at 10 (new scale) paid 6
    assert ledger.position_qty("daily_trend", "WKHS") == 2
    assert ledger.realized_on("daily_trend", date(2024, 6, 17)) == 1


def test_a_rebuild_from_fills_goes_through_the_split_again(ledger: Ledger) -> None:
    _fill(ledger, "hs", "hourly_swing", "buy", 41, "1200")
    ledger.apply_split(NVDA_10_FOR_1, PRE_OPEN)
    _fill(ledger, "x", "hourly_swing", "sell", 200, "125", now=PRE_OPEN + timedelta(hours=2))
    # A trade bust of the sell makes the ledger rebuild the position from its fills.
    busted = ledger.apply_event(
        BrokerEvent(
            event="trade_bust",
            client_order_id=ClientOrderId("x"),
            broker_order_id=BrokerOrderId("b-x"),
            ts_event=PRE_OPEN + timedelta(hours=3),
            source="stream",
            cum_filled_qty=Decimal(0),
            order_status="new",
        )
    )
    assert busted.restated
    assert ledger.position_qty("hourly_swing", "NVDA") == 410
    (hs,) = ledger.positions("hourly_swing")
    assert hs.avg_price == 120


def test_a_pending_next_open_exit_is_rebased(ledger: Ledger) -> None:
    signal = datetime(2024, 6, 7, 20, 0, tzinfo=UTC)
    sell = Intent(
        strategy="daily_trend",
        symbol="NVDA",
        action="sell",
        leg="exit",
        signal_time=signal,
        reason="exit",
        qty=8,
        execute="next_open",
    )
    buy = Intent(
        strategy="hourly_swing",
        symbol="NVDA",
        action="buy",
        leg="entry",
        signal_time=signal,
        reason="entry",
        sizing=FixedDollars(dollars=50_000, price=1200.0),
        execute="next_open",
    )
    ledger.add_intent(sell, now=signal)
    ledger.add_intent(buy, now=signal)
    ledger.apply_split(NVDA_10_FOR_1, PRE_OPEN)
    rows = {r.intent.action: r.intent for r in ledger.intents("pending")}
    assert rows["sell"].qty == 80
    assert rows["buy"].sizing == FixedDollars(dollars=50_000, price=120.0)


def test_a_dividend_is_booked_to_the_strategies_holding_on_the_ex_date(ledger: Ledger) -> None:
    _fill(ledger, "dt", "daily_trend", "buy", 100, "180", symbol="AAPL")
    _fill(ledger, "hs", "hourly_swing", "buy", 10, "1200")  # holds no AAPL
    dividend = CorporateAction("AAPL", "cash_dividend", EX, Decimal(1), Decimal(1), Decimal("0.25"))
    (booking,) = ledger.apply_dividend(dividend, PRE_OPEN)
    assert (booking.strategy, booking.cash) == ("daily_trend", 25)
    assert ledger.realized_on("daily_trend", EX) == 25
    assert ledger.realized_on("hourly_swing", EX) == 0
    assert ledger.apply_dividend(dividend, PRE_OPEN) is None
    assert ledger.position_qty("daily_trend", "AAPL") == 100


AAPL_DIVIDEND = CorporateAction(
    "AAPL", "cash_dividend", EX, Decimal(1), Decimal(1), Decimal("0.25")
)
EX_OPEN = datetime(2024, 6, 10, 13, 30, tzinfo=UTC)  # 09:30 ET on the ex-date
LATER = datetime(2024, 6, 14, 13, 0, tzinfo=UTC)  # a startup days after the ex-date


def test_a_dividend_booked_after_its_ex_date_goes_to_the_holders_at_its_start(
    ledger: Ledger,
) -> None:
    """The daemon was down over the ex-date: the shares held at its 00:00 (New York) are
    the ones the broker paid, whatever was bought or sold since."""
    _fill(ledger, "dt", "daily_trend", "buy", 100, "180", symbol="AAPL")
    _fill(ledger, "dt-x", "daily_trend", "sell", 40, "185", now=EX_OPEN, symbol="AAPL")
    _fill(ledger, "hs", "hourly_swing", "buy", 10, "184", now=EX_OPEN, symbol="AAPL")
    _fill(ledger, "dt-y", "daily_trend", "sell", 60, "186", LATER - timedelta(days=1), "AAPL")
    (booking,) = ledger.apply_dividend(AAPL_DIVIDEND, LATER)
    assert (booking.strategy, booking.qty_before, booking.cash) == ("daily_trend", 100, 25)
    sold = Decimal(40 * 5)
    assert ledger.realized_on("daily_trend", EX) == sold + 25
    assert ledger.realized_on("hourly_swing", EX) == 0
    assert ledger.apply_dividend(AAPL_DIVIDEND, LATER) is None


def test_a_split_after_the_dividend_is_taken_back_through_its_booking(ledger: Ledger) -> None:
    """4-for-1 on the 12th, after the dividend's ex-date (the 10th): the shares held at the
    ex-date are counted on the old scale, as the broker paid them."""
    _fill(ledger, "dt", "daily_trend", "buy", 100, "180", symbol="AAPL")
    _fill(ledger, "x", "daily_trend", "sell", 20, "181", EX_OPEN + timedelta(days=1), "AAPL")
    split = CorporateAction(
        "AAPL", "forward_split", date(2024, 6, 12), Decimal(4), Decimal(1), Decimal(0)
    )
    ledger.apply_split(split, datetime(2024, 6, 12, 13, 0, tzinfo=UTC))
    assert ledger.position_qty("daily_trend", "AAPL") == 320
    _fill(ledger, "y", "daily_trend", "buy", 40, "46", EX_OPEN + timedelta(days=3), "AAPL")
    (booking,) = ledger.apply_dividend(AAPL_DIVIDEND, LATER)
    assert (booking.qty_before, booking.cash) == (100, 25)


def test_a_dividend_whose_holders_the_ledger_cannot_tell_is_refused(ledger: Ledger) -> None:
    """A fill before a later split was busted after the split was booked: the position
    no longer matches the split's booking, and the count at the ex-date would be a guess."""
    _fill(ledger, "dt", "daily_trend", "buy", 100, "180", symbol="AAPL")
    _fill(ledger, "b", "daily_trend", "buy", 20, "181", EX_OPEN + timedelta(days=1), "AAPL")
    split = CorporateAction(
        "AAPL", "forward_split", date(2024, 6, 12), Decimal(4), Decimal(1), Decimal(0)
    )
    ledger.apply_split(split, datetime(2024, 6, 12, 13, 0, tzinfo=UTC))
    ledger.apply_event(
        BrokerEvent(
            event="trade_bust",
            client_order_id=ClientOrderId("b"),
            broker_order_id=BrokerOrderId("b-b"),
            ts_event=datetime(2024, 6, 12, 15, 0, tzinfo=UTC),
            source="stream",
            cum_filled_qty=Decimal(0),
            order_status="new",
        )
    )
    assert ledger.position_qty("daily_trend", "AAPL") == 400
    with pytest.raises(corporate.HoldersUnknown, match="split of 2024-06-12"):
        ledger.apply_dividend(AAPL_DIVIDEND, LATER)
    assert not ledger.corporate_action_applied("AAPL", EX, "cash_dividend")
