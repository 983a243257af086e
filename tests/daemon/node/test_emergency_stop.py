"""Emergency stops inside the daemon: losing trades in the ledger halt the strategy."""

from __future__ import annotations

import logging
import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from magellan_daemon.domain import BrokerEvent, BrokerOrderId, ClientOrderId
from magellan_daemon.node.daemon import Daemon
from magellan_daemon.node.emergency_totals import EmergencyTotals
from magellan_daemon.timefmt import parse_iso
from strategies.api.params import EmergencyStop
from strategies.lib.emergency import ClosedTrade, evaluate

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


def _old_reason(daemon: Daemon, strategy: str, params: EmergencyStop) -> str | None:
    """What the daemon decided before issue 17: every closed trade read from the ledger and
    the pure evaluator run over all of them, on each check."""
    trades = [
        ClosedTrade(
            symbol=t["symbol"],
            entry_time=parse_iso(t["entry_time"]),
            exit_time=parse_iso(t["exit_time"]),
            qty=int(Decimal(t["qty"])),
            entry_price=float(t["entry_price"]),
            exit_price=float(t["exit_price"]),
            pnl=float(t["pnl"]),
            session_date=date.fromisoformat(t["session_date"]),
        )
        for t in daemon.ledger.closed_trades(strategy)
    ]
    return evaluate(params, trades)


def _fill(daemon: Daemon, cid: str, symbol: str, side: str, qty: int, price: str, t) -> None:
    daemon.ledger.create_order(
        client_order_id=ClientOrderId(cid),
        account="main",
        strategy="hourly_swing",
        symbol=symbol,
        side=side,
        order_type="market",
        qty=Decimal(qty),
        stop_price=None,
        time_in_force="day",
        leg="entry" if side == "buy" else "exit",
        signal_time=t,
        intent_id=None,
        replaces=None,
        now=t,
    )
    daemon.ledger.apply_event(
        BrokerEvent(
            event="fill",
            client_order_id=ClientOrderId(cid),
            broker_order_id=BrokerOrderId(f"b-{cid}"),
            ts_event=t,
            source="stream",
            cum_filled_qty=Decimal(qty),
            price=Decimal(price),
        )
    )


def _restate(daemon: Daemon, cid: str, event: str, qty: int, avg: str | None, t) -> None:
    applied = daemon.ledger.apply_event(
        BrokerEvent(
            event=event,
            client_order_id=ClientOrderId(cid),
            broker_order_id=BrokerOrderId(f"b-{cid}"),
            ts_event=t,
            source="stream",
            cum_filled_qty=Decimal(qty),
            filled_avg_price=None if avg is None else Decimal(avg),
            order_status="filled" if qty else "new",
        )
    )
    assert applied.restated


PARAMS = [
    EmergencyStop(),  # the defaults
    EmergencyStop(consecutive_losing_days=2, rolling_window_days=3, min_trades_for_win_rate=3),
    EmergencyStop(win_rate_below=0.55, rolling_window_days=4, min_trades_for_win_rate=4),
    EmergencyStop(drawdown_threshold_pct=0.05, capital_dollars=100_000),
    EmergencyStop(drawdown_threshold_pct=0.2, capital_dollars=50_000, consecutive_losing_days=3),
]


def test_running_totals_decide_exactly_as_the_evaluator_over_every_trade(
    daemon: Daemon,
) -> None:
    """Issue 17: the check rebuilt every closed trade from the ledger on each sell fill. The
    running totals decide the same (reason and words) after every fill of a long mixed
    history on a real ledger: several symbols and trades a day, partial exits, wins and
    losses, fills learned out of exit order, a trade bust and a trade correction."""
    rng = random.Random(17)
    totals = EmergencyTotals(daemon.ledger)
    reasons: set[str] = set()

    def same() -> None:
        for params in PARAMS:
            new = totals.reason("hourly_swing", params)
            assert new == _old_reason(daemon, "hourly_swing", params)
            reasons.add(str(new))

    sells: list[tuple[str, int, str]] = []
    late: list[tuple[str, str, int, str, datetime]] = []
    n = 0
    for day in range(25):
        open_ = T0 + timedelta(days=day)
        for k in range(rng.randint(0, 4)):
            n += 1
            symbol = ["SPY", "QQQ", "IWM", "DIA"][k]  # one round trip per symbol a day
            qty = rng.choice([10, 20])
            buy = Decimal(100 + rng.randint(-5, 5))
            t = open_ + timedelta(minutes=30 * k)
            _fill(daemon, f"b{n}", symbol, "buy", qty, str(buy), t)
            same()
            exits = [qty] if rng.random() < 0.6 else [qty // 2, qty // 2]
            for j, part in enumerate(exits):
                price = str(buy + rng.choice([-3, -2, -1, 1, 2, 4]))
                sell = (f"s{n}-{j}", symbol, part, price, t + timedelta(minutes=20 + j))
                sells.append((sell[0], part, price))
                if rng.random() < 0.25:
                    late.append(sell)  # learned late: applied after later exits
                    continue
                _fill(daemon, sell[0], symbol, "sell", part, price, sell[4])
                same()
        for cid, symbol, part, price, when in late:  # the day's late news, at its end
            _fill(daemon, cid, symbol, "sell", part, price, when)
            same()
        late.clear()
        if day == 12:
            cid, part, _ = sells[-3]
            _restate(daemon, cid, "trade_bust", 0, None, open_ + timedelta(hours=5))
            same()
        if day == 18:
            cid, part, price = sells[-2]
            fixed = str(Decimal(price) - 7)
            _restate(daemon, cid, "trade_correct", part, fixed, open_ + timedelta(hours=5))
            same()
    # A big loss, the last trade, busted: the rewrite only deletes (nothing newer to read).
    end = T0 + timedelta(days=26)
    _fill(daemon, "b-last", "XLF", "buy", 100, "50", end)
    _fill(daemon, "s-last", "XLF", "sell", 100, "40", end + timedelta(minutes=5))
    same()
    _restate(daemon, "s-last", "trade_bust", 0, None, end + timedelta(hours=1))
    same()
    assert len(daemon.ledger.closed_trades("hourly_swing")) > 40
    assert len(reasons - {"None"}) >= 3  # the conditions did trip, with their own words


def test_the_totals_are_rebuilt_from_the_ledger_after_a_restart(
    daemon: Daemon, tmp_path: Path
) -> None:
    for day in range(5):
        _round_trip(daemon, day, "100", "99")
    before = daemon.emergency.totals.reason("daily_trend", EmergencyStop())
    assert before is not None and before.startswith("5 consecutive losing days")
    restarted = EmergencyTotals(daemon.ledger)  # a new process: nothing in memory
    assert restarted.reason("daily_trend", EmergencyStop()) == before
