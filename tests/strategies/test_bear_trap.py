"""Bear Trap, table-driven: each entry filter failing alone, each exit, the exit priority on
one bar, the protective-stop intent sequences and the order-update bookkeeping."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta

import orjson
import pytest

from strategies.api.model import (
    Bar,
    HoldingView,
    Intent,
    OpenOrderView,
    OrderUpdate,
    RiskBased,
    Step,
)
from strategies.api.session import Session
from strategies.bear_trap.plan import exit_split
from strategies.bear_trap.strategy import BearTrap, BearTrapParams

SESSION = Session(
    date=date(2024, 4, 2),
    open=datetime(2024, 4, 2, 13, 30, tzinfo=UTC),
    close=datetime(2024, 4, 2, 20, 0, tzinfo=UTC),
)
# The day after Thanksgiving: 13:00 ET close (18:00Z), so EOD is 12:55 ET.
EARLY = Session(
    date=date(2024, 11, 29),
    open=datetime(2024, 11, 29, 14, 30, tzinfo=UTC),
    close=datetime(2024, 11, 29, 18, 0, tzinfo=UTC),
)
# The scenario: 20 flat bars at 10 (range 0.1), a crash bar to 8.0, then the trap bar.
TRAP = {"o": 7.95, "h": 8.25, "l": 7.80, "c": 8.20, "v": 5000.0}
ATR_AT_TRAP = (12 * 0.1 + 2.0 + 0.45) / 14  # 12 flat TRs, the crash bar's 2.0, the trap's 0.45
STOP = 7.80 - 0.45 * ATR_AT_TRAP
ENTRY = 8.20
TP1 = ENTRY + 0.5 * (10.05 - ENTRY)  # 9.125
TP2 = 10.05


def bar(
    session: Session,
    minute: int,
    o: float,
    h: float,
    l: float,  # noqa: E741 - OHLC
    c: float,
    v: float = 1000.0,
    symbol: str = "AMC",
) -> Bar:
    """A 1Min bar starting ``minute`` minutes after the session open."""
    return Bar(
        symbol=symbol,
        timeframe="1Min",
        t=session.open + timedelta(minutes=minute),
        open=o,
        high=h,
        low=l,
        close=c,
        volume=v,
    )


def setup(
    session: Session = SESSION, start: int = 0, level: float = 10.0, symbol: str = "AMC"
) -> list[Bar]:
    """20 flat bars then the crash bar, from ``start`` minutes after the open."""
    flat = [
        bar(session, start + i, level, level + 0.05, level - 0.05, level, symbol=symbol)
        for i in range(20)
    ]
    return [*flat, bar(session, start + 20, level, level, 8.0, 8.05, symbol=symbol)]


def feed(bt: BearTrap, bars: list[Bar], session: Session = SESSION) -> Step:
    step = Step()
    for b in bars:
        step = bt.on_bar(b, session=session)
    return step


def trap(session: Session = SESSION, minute: int = 21, symbol: str = "AMC", **kw: float) -> Bar:
    p = TRAP | kw
    return bar(session, minute, p["o"], p["h"], p["l"], p["c"], p["v"], symbol=symbol)


def update(
    bt: BearTrap,
    leg: str,
    signal_time: datetime,
    side: str,
    qty: int,
    time: datetime,
    price: float | None = None,
    kind: str = "fill",
) -> Step:
    return bt.on_order_update(
        OrderUpdate(
            strategy="bear_trap",
            symbol="AMC",
            leg=leg,
            signal_time=signal_time,
            side=side,  # type: ignore[arg-type]
            kind=kind,  # type: ignore[arg-type]
            time=time,
            qty=qty if kind == "fill" else 0,
            price=price,
            filled_qty=qty,
        )
    )


def ack(bt: BearTrap, step: Step, resting: tuple[int, float | None] | None = None) -> Step:
    """What the router reports after each stop intent of ``step``: the stop that rests now,
    the one asked for unless ``resting`` says what rests instead (a refusal). Returns
    ``step``."""
    for intent in step.intents:
        if intent.action not in ("place_stop", "replace_stop", "cancel_stop"):
            continue
        if resting is not None:
            qty, price = resting
        elif intent.action == "cancel_stop":
            qty, price = 0, None
        else:
            qty, price = intent.qty or 0, intent.stop_price
        ack(
            bt,
            bt.on_order_update(
                OrderUpdate(
                    strategy="bear_trap",
                    symbol=intent.symbol,
                    leg="protective_stop",
                    signal_time=intent.signal_time,
                    side="sell",
                    kind="stop",
                    time=intent.signal_time,
                    qty=qty,
                    price=price,
                )
            ),
        )
    return step


def entered(
    session: Session = SESSION, start: int = 0, qty: int = 100
) -> tuple[BearTrap, datetime, datetime]:
    """A strategy holding ``qty`` shares filled at 8.20 one minute after the trap bar."""
    bt = BearTrap(BearTrapParams())
    feed(bt, setup(session, start), session)
    step = bt.on_bar(trap(session, start + 21), session=session)
    assert [i.action for i in step.intents] == ["buy"]
    signal = step.intents[0].signal_time
    filled_at = signal + timedelta(minutes=1)  # the next bar's open
    ack(bt, update(bt, "entry", signal, "buy", qty, filled_at, ENTRY))
    return bt, signal, filled_at


def shape(intents: tuple[Intent, ...]) -> list[tuple[str, str, int | None, float | None]]:
    return [
        (i.action, i.leg, i.qty, None if i.stop_price is None else round(i.stop_price, 9))
        for i in intents
    ]


# -- entry filters ----------------------------------------------------------------------------


def test_entry_on_the_reference_trap() -> None:
    bt = BearTrap(BearTrapParams())
    feed(bt, setup())
    step = bt.on_bar(trap(), session=SESSION)
    [intent] = step.intents
    [ev] = step.evaluations
    assert (intent.action, intent.leg, intent.qty, ev.decision) == ("buy", "entry", None, "enter")
    assert intent.signal_time == SESSION.open + timedelta(minutes=21)
    assert isinstance(intent.sizing, RiskBased)
    assert intent.sizing.price == 8.20
    assert intent.sizing.stop == pytest.approx(STOP, abs=1e-12)
    assert (intent.sizing.risk_fraction, intent.sizing.max_dollars) == (0.02, 50_000)
    v = ev.values
    assert v["session_open"] == 10.0
    assert v["session_low_prior"] == 8.0
    assert v["drawdown_pct"] == pytest.approx(-0.18)
    assert v["wick_ratio"] == pytest.approx(0.15 / 0.45)
    assert v["body_ratio"] == pytest.approx(0.25 / 0.45)
    assert v["volume_ratio"] == pytest.approx(5000 / ((18 * 1000 + 1000 + 5000) / 20))
    assert v["atr"] == pytest.approx(ATR_AT_TRAP)
    assert v["stop"] == pytest.approx(STOP)


@pytest.mark.parametrize(
    ("name", "level", "trap_kw", "reason"),
    [
        ("not down 15%", 9.5, {}, "not down 15% (-13.7%)"),
        ("no trap: low equals the prior low", 10.0, {"o": 8.05, "l": 8.0}, "no trap"),
        ("no reclaim: close equals the prior low", 10.0, {"c": 8.0, "h": 8.1}, "no reclaim"),
        ("no reclaim: close below", 10.0, {"c": 7.98, "h": 8.1}, "no reclaim"),
        ("short lower wick", 10.0, {"o": 7.85}, "wick 0.11 < 0.15"),
        ("small body", 10.0, {"o": 8.15}, "body 0.11 < 0.2"),
        ("low volume", 10.0, {"v": 1100.0}, "volume 1.09x < 1.2x"),
    ],
)
def test_each_entry_filter_failing_alone(
    name: str, level: float, trap_kw: dict[str, float], reason: str
) -> None:
    bt = BearTrap(BearTrapParams())
    bars = setup(level=level)
    if level != 10.0:
        # keep the crash bar's low at 8.0 so only the drop filter differs from the reference
        bars[-1] = bar(SESSION, 20, level, level, 8.0, 8.05)
    feed(bt, bars)
    step = bt.on_bar(trap(**trap_kw), session=SESSION)
    assert step.intents == ()
    [ev] = step.evaluations
    assert ev.decision == "skip"
    assert ev.reason.startswith(reason), (name, ev.reason)


def test_volume_at_exactly_the_threshold_enters() -> None:
    # mean over 20 bars including this one: v >= 1.2 * (19000 + v) / 20  <=>  v >= 1212.77
    bt = BearTrap(BearTrapParams())
    feed(bt, setup())
    assert bt.on_bar(trap(v=1213.0), session=SESSION).intents
    bt = BearTrap(BearTrapParams())
    feed(bt, setup())
    assert not bt.on_bar(trap(v=1212.0), session=SESSION).intents


def test_warming_up_and_first_bar_of_session() -> None:
    bt = BearTrap(BearTrapParams())
    step = feed(bt, setup()[-5:])
    assert step.evaluations[0].reason.startswith("warming up")
    # warm history on the previous session, then the trap as the day's first bar
    prev = Session(
        date=date(2024, 4, 1),
        open=datetime(2024, 4, 1, 13, 30, tzinfo=UTC),
        close=datetime(2024, 4, 1, 20, 0, tzinfo=UTC),
    )
    bt = BearTrap(BearTrapParams())
    feed(bt, setup(prev), prev)
    step = bt.on_bar(trap(minute=0), session=SESSION)
    assert (step.intents, step.evaluations[0].reason) == ((), "first bar of the session")


@pytest.mark.parametrize(("minute", "enters"), [(383, True), (384, False), (389, False)])
def test_no_entry_at_or_after_the_eod_time(minute: int, enters: bool) -> None:
    # bar 383 (15:53 ET) completes at 15:54; bar 384 completes at 15:55 = close - 5 min
    bt = BearTrap(BearTrapParams())
    feed(bt, setup(start=minute - 21))
    step = bt.on_bar(trap(minute=minute), session=SESSION)
    assert bool(step.intents) is enters
    if not enters:
        assert step.evaluations[0].reason == "entry cutoff: end of day"


def test_no_entry_while_held_or_pending() -> None:
    bt = BearTrap(BearTrapParams())
    feed(bt, setup())
    assert bt.on_bar(trap(), session=SESSION).intents
    again = bt.on_bar(trap(minute=22, l=7.7, o=7.85, c=8.1), session=SESSION)
    assert again.intents == ()
    assert again.evaluations[0].reason == "entry order pending"


def test_universe_and_star() -> None:
    bt = BearTrap(BearTrapParams())
    step = feed(bt, [*setup(symbol="XYZ"), trap(symbol="XYZ")])
    assert step.intents == ()
    assert step.evaluations[0].reason == "symbol not in the universe"
    assert bt.snapshot()["symbols"] == {}
    bt = BearTrap(BearTrapParams(universe=("*",)))
    assert feed(bt, [*setup(symbol="XYZ"), trap(symbol="XYZ")]).intents


def test_bars_outside_the_session_touch_nothing() -> None:
    bt = BearTrap(BearTrapParams())
    feed(bt, setup())
    before = bt.snapshot()
    pre = bar(SESSION, -10, 5.0, 5.0, 1.0, 4.0, 1e9)
    post = bar(SESSION, 390, 5.0, 5.0, 1.0, 4.0, 1e9)
    for b in (pre, post):
        assert bt.on_bar(b, session=SESSION).evaluations[0].reason == "outside regular session"
    assert bt.on_bar(trap(), session=None).evaluations[0].reason == "outside regular session"
    assert bt.snapshot() == before


def test_params_reject_bad_values() -> None:
    with pytest.raises(ValueError, match="exceeds 1"):
        BearTrapParams(tp1_fraction=0.8, tp2_fraction=0.3)
    with pytest.raises(ValueError, match="extra"):
        BearTrapParams(wick=0.1)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="only entry"):
        BearTrapParams(universe=("*", "AMC"))


# -- exits ---------------------------------------------------------------------------------

M = 22  # first bar after the fill (the fill is at the open of minute 22)
HOLD: list[tuple[str, str, int | None, float | None]] = []


def stop_place(qty: int) -> tuple[str, str, int | None, float | None]:
    return ("place_stop", "protective_stop", qty, round(STOP, 9))


@pytest.mark.parametrize(
    ("name", "bars", "expected", "reason"),
    [
        ("hold", [(M, 8.2, 8.5, 8.1, 8.4)], HOLD, "holding"),
        (
            "stop touched: the resting stop exits, no market sell",
            [(M, 8.2, 8.3, 7.6, 7.7)],
            HOLD,
            "stop touched: resting stop order exits",
        ),
        (
            "tp1: stop reduced first, then 40% sold",
            [(M, 8.2, 9.2, 8.1, 9.0)],
            [("replace_stop", "protective_stop", 60, round(STOP, 9)), ("sell", "tp1", 40, None)],
            "tp1",
        ),
        (
            "time stop: 30 min after the fill (bar 51 ends at 14:22 = 13:52 + 30)",
            [(51, 8.3, 8.5, 8.1, 8.4)],
            [("cancel_stop", "protective_stop", None, None), ("sell", "time_stop", 100, None)],
            "time stop",
        ),
        ("29 minutes: still held", [(50, 8.3, 8.5, 8.1, 8.4)], HOLD, "holding"),
        # priority on one bar
        (
            "stop + tp1 on one bar: the stop wins",
            [(M, 8.2, 9.5, 7.6, 9.0)],
            HOLD,
            "stop touched",
        ),
        (
            "tp1 + tp2 on one bar: tp1 only",
            [(M, 8.2, 10.2, 8.1, 10.0)],
            [("replace_stop", "protective_stop", 60, round(STOP, 9)), ("sell", "tp1", 40, None)],
            "tp1",
        ),
        (
            "tp1 + time stop on one bar: the time stop sells everything",
            [(51, 8.3, 9.5, 8.1, 9.4)],
            [("cancel_stop", "protective_stop", None, None), ("sell", "time_stop", 100, None)],
            "time stop",
        ),
        (
            "stop + time stop on one bar: the stop wins",
            [(51, 8.3, 8.5, 7.5, 7.6)],
            HOLD,
            "stop touched",
        ),
    ],
)
def test_exits_table(
    name: str,
    bars: list[tuple[int, float, float, float, float]],
    expected: list[tuple[str, str, int | None, float | None]],
    reason: str,
) -> None:
    bt, _, _ = entered()
    step = feed(bt, [bar(SESSION, *b) for b in bars])
    assert shape(step.intents) == expected, name
    assert step.evaluations[0].reason.startswith(reason), step.evaluations[0].reason


def test_stop_not_filled_one_bar_later_sells_at_market() -> None:
    bt, _, _ = entered()
    assert feed(bt, [bar(SESSION, M, 8.2, 8.3, 7.6, 7.7)]).intents == ()
    step = bt.on_bar(bar(SESSION, M + 1, 7.7, 7.9, 7.65, 7.8), session=SESSION)
    assert shape(step.intents) == [
        ("cancel_stop", "protective_stop", None, None),
        ("sell", "stop_exit", 100, None),
    ]


def test_stop_filled_by_the_broker_leaves_the_strategy_flat() -> None:
    bt, signal, filled_at = entered()
    feed(bt, [bar(SESSION, M, 8.2, 8.3, 7.6, 7.7)])
    update(bt, "protective_stop", signal, "sell", 100, filled_at + timedelta(minutes=1), STOP)
    assert bt.position("AMC") == 0
    assert bt.plan("AMC") is None
    step = bt.on_bar(bar(SESSION, M + 1, 7.7, 7.9, 7.65, 7.8), session=SESSION)
    assert step.intents == ()


def test_stop_without_a_resting_order_sells_at_once() -> None:
    bt, signal, filled_at = entered()
    update(bt, "protective_stop", signal, "sell", 0, filled_at, kind="rejected")
    step = bt.on_bar(bar(SESSION, M, 8.2, 8.3, 7.6, 7.7), session=SESSION)
    assert shape(step.intents) == [("sell", "stop_exit", 100, None)]


def test_tp2_after_tp1_raises_the_stop_to_support() -> None:
    bt, _, _ = entered()
    step = bt.on_bar(bar(SESSION, M, 8.2, 10.2, 8.1, 10.0), session=SESSION)
    tp1_signal = step.intents[1].signal_time
    # the tp1 sell is still out: no second exit
    assert bt.on_bar(bar(SESSION, M + 1, 10.0, 10.2, 9.9, 10.1), session=SESSION).intents == ()
    update(bt, "tp1", tp1_signal, "sell", 40, tp1_signal + timedelta(minutes=1), 9.9)
    step = bt.on_bar(bar(SESSION, M + 2, 10.0, 10.06, 9.9, 10.0), session=SESSION)
    assert shape(step.intents) == [
        ("replace_stop", "protective_stop", 30, 7.8),
        ("sell", "tp2", 30, None),
    ]
    tp2_signal = step.intents[1].signal_time
    update(bt, "tp2", tp2_signal, "sell", 30, tp2_signal + timedelta(minutes=1), 10.0)
    plan = bt.plan("AMC")
    assert plan is not None
    assert (plan.position, plan.stop, plan.stop_order) == (
        30,
        7.8,
        {"signal_time": plan.signal_time.isoformat(), "qty": 30, "price": 7.8},
    )
    # the runner is left to the time stop
    step = bt.on_bar(bar(SESSION, 51, 10.0, 10.3, 9.9, 10.2), session=SESSION)
    assert shape(step.intents) == [
        ("cancel_stop", "protective_stop", None, None),
        ("sell", "time_stop", 30, None),
    ]


def test_tp_levels_are_fixed_at_the_fill_price() -> None:
    bt, _, _ = entered()
    plan = bt.plan("AMC")
    assert plan is not None
    assert (plan.entry_price, plan.tp1_level, plan.tp2_level) == (ENTRY, TP1, TP2)
    assert plan.session_high == 10.05


@pytest.mark.parametrize(
    ("name", "entry_minute", "bars", "expected"),
    [
        # EOD on the 13:00 close: bar 12:54 ET (t=17:54Z, minute 204) ends at 12:55
        (
            "eod at 12:55 on an early close",
            180,  # fill at 17:31Z: the time stop (18:01Z) would come after the close
            [(204, 8.3, 8.5, 8.1, 8.4)],
            [("cancel_stop", "protective_stop", None, None), ("sell", "eod", 100, None)],
        ),
        ("one minute earlier: still held", 180, [(203, 8.3, 8.5, 8.1, 8.4)], HOLD),
        (
            "time stop and eod due together: time stop",
            174,  # fill at 17:25Z, time stop due at 17:55Z = the EOD time
            [(204, 8.3, 8.5, 8.1, 8.4)],
            [("cancel_stop", "protective_stop", None, None), ("sell", "time_stop", 100, None)],
        ),
        (
            "tp1 and eod due together: eod sells everything",
            180,
            [(204, 8.3, 9.5, 8.1, 9.4)],
            [("cancel_stop", "protective_stop", None, None), ("sell", "eod", 100, None)],
        ),
    ],
)
def test_eod_on_an_early_close(
    name: str,
    entry_minute: int,
    bars: list[tuple[int, float, float, float, float]],
    expected: list[tuple[str, str, int | None, float | None]],
) -> None:
    bt, _, _ = entered(EARLY, start=entry_minute - 21)
    step = feed(bt, [bar(EARLY, *b) for b in bars], EARLY)
    assert shape(step.intents) == expected, name


# -- order updates and the protective stop ---------------------------------------------------


def test_partial_entry_fills_place_then_resize_the_stop() -> None:
    bt = BearTrap(BearTrapParams())
    feed(bt, setup())
    signal = bt.on_bar(trap(), session=SESSION).intents[0].signal_time
    t = signal + timedelta(minutes=1)
    first = update(bt, "entry", signal, "buy", 60, t, 8.2)
    assert shape(first.intents) == [stop_place(60)]
    assert first.intents[0].signal_time == signal
    second = update(bt, "entry", signal, "buy", 40, t + timedelta(seconds=5), 8.3)
    assert shape(second.intents) == [("replace_stop", "protective_stop", 100, round(STOP, 9))]
    plan = bt.plan("AMC")
    assert plan is not None
    assert (plan.position, plan.entry_qty, plan.entry_time) == (100, 100, t)
    assert plan.entry_price == pytest.approx((60 * 8.2 + 40 * 8.3) / 100)


def test_entry_rejected_clears_the_plan_and_allows_a_new_entry() -> None:
    bt = BearTrap(BearTrapParams())
    feed(bt, setup())
    signal = bt.on_bar(trap(), session=SESSION).intents[0].signal_time
    update(bt, "entry", signal, "buy", 0, signal + timedelta(minutes=1), kind="rejected")
    assert bt.plan("AMC") is None
    step = bt.on_bar(trap(minute=22, o=7.75, l=7.6, h=8.1, c=8.05), session=SESSION)
    assert [i.action for i in step.intents] == ["buy"]


def test_rejected_partial_exit_restores_the_stop_and_tp1_is_tried_again() -> None:
    bt, _, _ = entered()
    step = ack(bt, bt.on_bar(bar(SESSION, M, 8.2, 9.2, 8.1, 9.0), session=SESSION))
    tp1_signal = step.intents[1].signal_time
    back = update(bt, "tp1", tp1_signal, "sell", 0, tp1_signal, kind="rejected")
    assert shape(back.intents) == [("replace_stop", "protective_stop", 100, round(STOP, 9))]
    ack(bt, back)
    # Nothing of TP1 was sold: the next bar that reaches its level decides it again.
    again = bt.on_bar(bar(SESSION, M + 1, 9.0, 9.3, 8.9, 9.1), session=SESSION)
    assert shape(again.intents) == [
        ("replace_stop", "protective_stop", 60, round(STOP, 9)),
        ("sell", "tp1", 40, None),
    ]


def test_refused_replace_keeps_the_stop_that_still_rests() -> None:
    bt, _, _ = entered()
    step = bt.on_bar(bar(SESSION, M, 8.2, 9.2, 8.1, 9.0), session=SESSION)
    ack(bt, step, resting=(100, STOP))  # the broker refused to shrink it: 100 still held
    plan = bt.plan("AMC")
    assert plan is not None and plan.stop_order is not None
    assert (plan.stop_order["qty"], plan.stop_order["price"]) == (100, STOP)
    tp1_signal = step.intents[1].signal_time
    # ... so the router did not send the TP1 sell (the stop holds the shares)
    back = update(bt, "tp1", tp1_signal, "sell", 0, tp1_signal, kind="rejected")
    assert back.intents == ()  # the stop already covers the 100 shares: nothing to do
    # a final exit still cancels the stop that rests
    later = bt.on_bar(bar(SESSION, 51, 8.3, 8.5, 8.1, 8.4), session=SESSION)
    assert shape(later.intents) == [
        ("cancel_stop", "protective_stop", None, None),
        ("sell", "time_stop", 100, None),
    ]


def test_a_stop_that_could_not_be_placed_is_placed_again_on_the_next_bar() -> None:
    bt = BearTrap(BearTrapParams())
    feed(bt, setup())
    signal = bt.on_bar(trap(), session=SESSION).intents[0].signal_time
    placed = update(bt, "entry", signal, "buy", 100, signal + timedelta(minutes=1), ENTRY)
    ack(bt, placed, resting=(0, None))  # refused (e.g. a wash-trade 403): nothing rests
    plan = bt.plan("AMC")
    assert plan is not None and plan.stop_order is None
    step = bt.on_bar(bar(SESSION, 23, 8.2, 8.3, 8.1, 8.2), session=SESSION)
    assert shape(step.intents) == [stop_place(100)]
    assert bt.on_bar(bar(SESSION, 24, 8.2, 8.3, 8.1, 8.2), session=SESSION).intents == ()


def test_rejected_final_exit_places_a_new_stop_and_retries() -> None:
    bt, signal, _ = entered()
    step = ack(bt, bt.on_bar(bar(SESSION, 51, 8.3, 8.5, 8.1, 8.4), session=SESSION))
    exit_signal = step.intents[1].signal_time
    back = update(bt, "time_stop", exit_signal, "sell", 0, exit_signal, kind="expired")
    assert shape(back.intents) == [stop_place(100)]
    assert back.intents[0].signal_time == signal
    ack(bt, back)
    step = bt.on_bar(bar(SESSION, 52, 8.3, 8.5, 8.1, 8.4), session=SESSION)
    assert shape(step.intents) == [
        ("cancel_stop", "protective_stop", None, None),
        ("sell", "time_stop", 100, None),
    ]
    assert step.intents[0].signal_time == signal


def test_an_unconfirmed_cancel_keeps_the_stop_and_the_exit_is_decided_again() -> None:
    bt, _, _ = entered()
    step = bt.on_bar(bar(SESSION, 51, 8.3, 8.5, 8.1, 8.4), session=SESSION)
    ack(bt, step, resting=(100, STOP))  # the cancel was not confirmed: the stop rests
    exit_signal = step.intents[1].signal_time
    back = update(bt, "time_stop", exit_signal, "sell", 0, exit_signal, kind="rejected")
    assert back.intents == ()  # still protected by the stop that rests
    step = bt.on_bar(bar(SESSION, 52, 8.3, 8.5, 8.1, 8.4), session=SESSION)
    assert shape(step.intents) == [
        ("cancel_stop", "protective_stop", None, None),
        ("sell", "time_stop", 100, None),
    ]


def test_never_sells_more_than_held_after_a_partial_stop_fill() -> None:
    bt, signal, filled_at = entered()
    update(bt, "protective_stop", signal, "sell", 70, filled_at, STOP)
    assert bt.position("AMC") == 30
    step = bt.on_bar(bar(SESSION, M, 8.2, 9.2, 8.1, 9.0), session=SESSION)
    # TP1 wants 40 but only 30 are held: it becomes the final exit
    assert shape(step.intents) == [
        ("cancel_stop", "protective_stop", None, None),
        ("sell", "tp1", 30, None),
    ]


def test_exit_fills_make_the_strategy_flat_and_snapshot_round_trips() -> None:
    bt, _, _ = entered()
    step = ack(bt, bt.on_bar(bar(SESSION, M, 8.2, 9.2, 8.1, 9.0), session=SESSION))
    snap = orjson.loads(orjson.dumps(bt.snapshot()))
    clone = BearTrap(BearTrapParams(), state=snap)
    assert clone.snapshot() == bt.snapshot()
    tp1_signal = step.intents[1].signal_time
    for strategy in (bt, clone):
        update(strategy, "tp1", tp1_signal, "sell", 40, tp1_signal, 9.1)
        later = ack(
            strategy, strategy.on_bar(bar(SESSION, 51, 9.0, 9.1, 8.9, 9.0), session=SESSION)
        )
        assert shape(later.intents)[-1] == ("sell", "time_stop", 60, None)
        update(strategy, "time_stop", later.intents[-1].signal_time, "sell", 60, tp1_signal, 9.0)
        assert strategy.position("AMC") == 0
        assert strategy.plan("AMC") is None
    assert clone.snapshot() == bt.snapshot()


@pytest.mark.parametrize(
    ("qty", "split"),
    [
        (1, (0, 0, 1)),
        (2, (0, 0, 2)),
        (3, (1, 0, 2)),
        (4, (1, 1, 2)),
        (5, (2, 1, 2)),
        (10, (4, 3, 3)),
        (101, (40, 30, 31)),
        (0, (0, 0, 0)),
    ],
)
def test_exit_split_sums_to_the_entry_qty(qty: int, split: tuple[int, int, int]) -> None:
    assert exit_split(qty, 0.4, 0.3) == split
    assert sum(split) == qty


def test_zero_share_tp1_sends_nothing_but_counts_as_done() -> None:
    bt, _, _ = entered(qty=2)
    step = bt.on_bar(bar(SESSION, M, 8.2, 9.2, 8.1, 9.0), session=SESSION)
    # the stop is re-sent for the (unchanged) 2 shares, no sell
    assert shape(step.intents) == [("replace_stop", "protective_stop", 2, round(STOP, 9))]
    assert step.evaluations[0].decision == "hold"
    plan = bt.plan("AMC")
    assert plan is not None and plan.tp1_done


# -- the clock alone (no bar for the symbol) ---------------------------------------------------


def test_on_clock_sells_at_eod_when_no_bar_comes() -> None:
    bt, _, _ = entered(EARLY, start=159)  # filled at 17:31Z: the time stop would be 18:01Z
    eod = EARLY.close - timedelta(minutes=5)
    assert bt.on_clock(eod - timedelta(minutes=1), EARLY).intents == ()
    step = bt.on_clock(eod, EARLY)
    assert shape(step.intents) == [
        ("cancel_stop", "protective_stop", None, None),
        ("sell", "eod", 100, None),
    ]
    assert step.intents[1].signal_time == eod - timedelta(minutes=1)
    assert bt.on_clock(eod + timedelta(minutes=1), EARLY).intents == ()  # exit pending


def test_on_clock_time_stop_and_nothing_when_flat() -> None:
    bt, _, filled_at = entered(SESSION, start=0)
    due = filled_at + timedelta(minutes=30)
    assert bt.on_clock(due - timedelta(minutes=1), SESSION).intents == ()
    assert [i.leg for i in bt.on_clock(due, SESSION).intents] == ["protective_stop", "time_stop"]
    assert BearTrap(BearTrapParams()).on_clock(due, SESSION).intents == ()
    assert bt.on_clock(SESSION.close + timedelta(hours=1), SESSION).intents == ()


def test_an_entry_when_the_volume_mean_is_zero_says_so() -> None:
    bt = BearTrap(BearTrapParams(volume_multiple=0))
    feed(bt, [dataclasses.replace(b, volume=0.0) for b in setup()])
    step = bt.on_bar(trap(v=0.0), session=SESSION)
    [intent] = step.intents
    assert "volume n/a (mean 0)" in intent.reason


# -- the restart sync --------------------------------------------------------------------------


def _view(position: int, *orders: OpenOrderView) -> dict[str, HoldingView]:
    return {"AMC": HoldingView(symbol="AMC", position=position, open_orders=orders)}


def test_sync_an_entry_filled_while_down_gets_its_stop() -> None:
    bt = BearTrap(BearTrapParams())
    feed(bt, setup())
    signal = bt.on_bar(trap(), session=SESSION).intents[0].signal_time
    # the entry filled while the daemon was down: the ledger has 100 shares, no stop
    step = bt.sync(_view(100), signal + timedelta(minutes=2))
    assert shape(step.intents) == [stop_place(100)]
    plan = bt.plan("AMC")
    assert plan is not None and plan.position == 100 and not plan.entry_pending


def test_sync_a_stop_that_fired_while_down_leaves_the_strategy_flat() -> None:
    bt, _, filled_at = entered()
    step = bt.sync({}, filled_at + timedelta(minutes=5))  # nothing held, nothing open
    assert step.intents == ()
    assert bt.plan("AMC") is None and bt.position("AMC") == 0


def test_the_clock_is_due_only_while_a_position_is_held() -> None:
    # The daemon skips on_clock when clock_due() says so: it must be True whenever on_clock
    # could sell, i.e. from the entry's first fill until the position is gone.
    fresh = BearTrap(BearTrapParams())
    feed(fresh, setup())
    assert not fresh.clock_due()
    bt, _, filled_at = entered(SESSION, start=0)
    assert bt.clock_due()
    due = filled_at + timedelta(minutes=30)
    assert [i.leg for i in bt.on_clock(due, SESSION).intents] == ["protective_stop", "time_stop"]
    assert bt.clock_due()  # the time stop's sell is pending, the shares still held


def test_sync_keeps_the_resting_stop_it_finds() -> None:
    bt, signal, filled_at = entered()
    stop = OpenOrderView(
        leg="protective_stop", signal_time=signal, side="sell", remaining=100, stop_price=7.68
    )
    assert bt.sync(_view(100, stop), filled_at).intents == ()
    plan = bt.plan("AMC")
    assert plan is not None and plan.stop_order == {
        "signal_time": signal.isoformat(),
        "qty": 100,
        "price": 7.68,
    }


def test_sync_cancels_a_stop_that_protects_nothing() -> None:
    bt, signal, filled_at = entered()
    stop = OpenOrderView(
        leg="protective_stop", signal_time=signal, side="sell", remaining=100, stop_price=7.68
    )
    step = bt.sync(_view(0, stop), filled_at)
    assert shape(step.intents) == [("cancel_stop", "protective_stop", None, None)]


def test_sync_a_position_without_a_plan_is_exited_by_the_time_stop() -> None:
    bt = BearTrap(BearTrapParams())
    feed(bt, setup())
    now = SESSION.open + timedelta(minutes=30)
    assert bt.sync(_view(50), now).intents == ()  # no stop level known: none placed
    later = bt.on_clock(now + timedelta(minutes=31), SESSION)
    assert shape(later.intents) == [("sell", "time_stop", 50, None)]


# -- exits the broker refused (issue 17) --------------------------------------------------


def test_a_refused_market_stop_exit_is_decided_again_and_the_time_stop_still_fires() -> None:
    """The market exit sent when the stop level is crossed with no resting stop is an exit
    like any other: refused, it leaves nothing pending, the stop is placed again, the next
    bar under the level sells again, and the time stop still fires (it once set
    ``exit_pending`` forever: every later bar only held)."""
    bt, signal, filled_at = entered()
    update(bt, "protective_stop", signal, "sell", 0, filled_at, kind="rejected")
    step = bt.on_bar(bar(SESSION, M, 8.2, 8.3, 7.6, 7.7), session=SESSION)
    assert shape(step.intents) == [("sell", "stop_exit", 100, None)]
    exit_signal = step.intents[0].signal_time
    back = update(bt, "stop_exit", exit_signal, "sell", 0, exit_signal, kind="rejected")
    assert bt.plan("AMC").exit_pending is None
    assert shape(back.intents) == [stop_place(100)]
    update(bt, "protective_stop", signal, "sell", 0, exit_signal, kind="rejected")
    ack(bt, back, resting=(0, None))  # the stop was refused again
    step = bt.on_bar(bar(SESSION, M + 1, 7.7, 7.8, 7.5, 7.6), session=SESSION)
    assert shape(step.intents) == [("sell", "stop_exit", 100, None)]
    when = step.intents[0].signal_time
    back = update(bt, "stop_exit", when, "sell", 0, exit_signal, kind="canceled")
    ack(bt, back, resting=(0, None))
    late = filled_at + timedelta(minutes=31)
    step = bt.on_clock(late, SESSION)
    assert ("sell", "time_stop", 100, None) in shape(step.intents)


def test_a_sell_the_router_reduced_completes_when_its_order_is_done() -> None:
    """The router may send fewer shares than asked (the rest held elsewhere): the exit ends
    when its order is filled, not when the asked quantity is, or it would wait forever."""
    bt, _, _ = entered()
    step = ack(bt, bt.on_bar(bar(SESSION, 51, 8.3, 8.5, 8.1, 8.4), session=SESSION))
    sell = step.intents[-1]
    assert (sell.leg, sell.qty) == ("time_stop", 100)
    bt.on_order_update(
        OrderUpdate(
            strategy="bear_trap",
            symbol="AMC",
            leg="time_stop",
            signal_time=sell.signal_time,
            side="sell",
            kind="fill",
            time=sell.signal_time,
            qty=60,
            price=8.3,
            filled_qty=60,
            order_qty=60,
        )
    )
    assert bt.plan("AMC").exit_pending is None
    assert bt.position("AMC") == 40


def test_a_stop_resting_for_fewer_shares_than_held_is_resized_on_the_next_bar() -> None:
    """A partly filled entry's stop whose resize was refused rests for the first fill's
    shares only: the next bar asks again for every share held (it once rode half the
    position without a stop until the time stop)."""
    bt, signal, filled_at = entered(qty=1933)
    step = update(bt, "entry", signal, "buy", 1933, filled_at, ENTRY)
    assert shape(step.intents) == [("replace_stop", "protective_stop", 3866, round(STOP, 9))]
    ack(bt, step, resting=(1933, STOP))  # the replace was refused: the old stop rests
    step = bt.on_bar(bar(SESSION, M, 8.3, 8.5, 8.1, 8.4), session=SESSION)
    assert shape(step.intents) == [("replace_stop", "protective_stop", 3866, round(STOP, 9))]
    ack(bt, step)
    step = bt.on_clock(SESSION.open + timedelta(minutes=M + 2), SESSION)
    assert step.intents == ()  # covered now: nothing more


def test_the_rest_of_a_tp1_sell_is_protected_while_the_sell_waits() -> None:
    """No stop rests (its placement was refused) when TP1 sells 40 of 100: while that sell
    waits for its fill, the 60 left get their stop at the next bar or clock tick (they once
    rode without one until the sell filled)."""
    bt, signal, filled_at = entered()
    update(bt, "protective_stop", signal, "sell", 0, filled_at, kind="rejected")
    ack(bt, Step(intents=()), resting=(0, None))
    bt.plan("AMC").stop_order = None  # the refused placement's report: nothing rests
    step = bt.on_bar(bar(SESSION, M, 8.2, 9.2, 8.1, 9.0), session=SESSION)
    assert shape(step.intents) == [("sell", "tp1", 40, None)]
    step = bt.on_clock(SESSION.open + timedelta(minutes=M + 1, seconds=5), SESSION)
    assert shape(step.intents) == [("place_stop", "protective_stop", 60, round(STOP, 9))]
    ack(bt, step)
    again = bt.on_bar(bar(SESSION, M + 1, 9.0, 9.1, 8.9, 9.0), session=SESSION)
    assert again.intents == ()  # covered: the 60 under the stop, the 40 under the sell
