"""The model-based test's harness judged on its own: sequences that must pass (a trade with
no fault exits by its stop, TP1 and the time stop, and is flat by the close; a stop
canceled behind the daemon's back is placed again in time), and books that must fail the
watchdog (shares bought behind the daemon's back are unprotected; two exit sells)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from tests.daemon.execution.exit_model import ACCOUNT, SYMBOL, ExitStack
from tests.daemon.execution.test_exit_machine import DAY, ExitMachine, Watchdog


def _machine() -> ExitMachine:
    machine = ExitMachine()
    machine.crash_and_trap(entry="accepted")
    return machine


def _check(machine: ExitMachine) -> None:
    machine.no_broken_promise_at_the_broker()
    machine.never_short_in_the_ledger()
    machine.flat_by_the_close()
    machine.every_intent_reported_exactly_once()


def _close(machine: ExitMachine) -> None:
    if machine.stack is not None:
        machine.stack.close()


def _filled_sells(machine: ExitMachine) -> list[tuple[str, str]]:
    """(leg, filled qty) of the sells that filled, in the order the broker first told of
    them (the leg: what follows the signal time in the client_order_id)."""
    assert machine.stack is not None
    return [
        (o["client_order_id"].split("-", 4)[-1], o["filled_qty"])
        for o in machine.stack.mirror.orders.values()
        if o["side"] == "sell" and o["status"] == "filled"
    ]


def test_time_stop_exit_with_no_fault_keeps_every_promise() -> None:
    machine = _machine()
    try:
        _check(machine)
        machine.bar(1, 1, (0.5, 0.5, 0.5, 0.5))  # the entry fills; the stop is placed
        _check(machine)
        stack = machine.stack
        assert stack is not None
        assert stack.mirror.position > 0
        stops = [o for o in stack.mirror.working_sells() if o["type"] == "stop"]
        assert [Decimal(o["qty"]) for o in stops] == [stack.mirror.position]
        for _ in range(4):
            machine.quiet(12)
            _check(machine)
        assert stack.mirror.position == 0
        assert [leg for leg, _ in _filled_sells(machine)] == ["time_stop"]
        machine.teardown()
    finally:
        _close(machine)


def test_stop_and_targets_with_no_fault_keep_every_promise() -> None:
    machine = _machine()
    try:
        machine.bar(1, 1, (0.5, 0.5, 0.5, 0.5))
        machine.bar(1, 2, (0.5, 0.5, 0.0, 1.0))  # TP1: 40% sold, the stop resized
        _check(machine)
        machine.quiet(2)
        machine.bar(2, 3, (0.5, 0.5, 0.0, 1.0))  # TP2: 30% more, the stop raised to support
        machine.quiet(2)
        _check(machine)
        machine.bar(0, 1, (0.5, 0.5, 1.0, 0.0))  # through the raised stop: it fills
        machine.quiet(2)
        _check(machine)
        assert machine.stack is not None and machine.stack.mirror.position == 0
        assert [leg for leg, _ in _filled_sells(machine)] == ["tp1", "ps-3", "tp2"]
        machine.teardown()
    finally:
        _close(machine)


def test_a_stop_canceled_behind_the_daemons_back_is_placed_again_in_time() -> None:
    machine = _machine()
    try:
        machine.bar(1, 1, (0.5, 0.5, 0.5, 0.5))
        stack = machine.stack
        assert stack is not None
        (stop,) = stack.mirror.working_sells()
        stack.exchange.orders.cancel_order(ACCOUNT, stop["id"])
        machine.quiet(3)
        _check(machine)
        assert [o["type"] for o in stack.mirror.working_sells()] == ["stop"]
        machine.teardown()
    finally:
        _close(machine)


def test_consecutive_refused_stops_each_retried_within_a_bar_keep_every_promise() -> None:
    machine = _machine()
    try:
        machine.next_order_answer("refused 403 wash trade", 5)
        machine.bar(1, 1, (0.5, 0.5, 0.5, 0.5))  # filled; ps-1 refused, ps-2 at the tick too
        machine.quiet(3)  # ps-3 to ps-5 refused at the bars and ticks, ps-6 rests
        _check(machine)
        stack = machine.stack
        assert stack is not None
        (stop,) = stack.mirror.working_sells()
        assert stop["client_order_id"].endswith("-ps-6")
        machine.teardown()
    finally:
        _close(machine)


def _buy_behind_the_daemons_back(stack: ExitStack, qty: int) -> None:
    stack.exchange.orders.submit_order(
        ACCOUNT,
        symbol=SYMBOL,
        qty=Decimal(qty),
        notional=None,
        side="buy",
        type="market",
        time_in_force="day",
        limit_price=None,
        stop_price=None,
        client_order_id=None,
        extended_hours=False,
    )


def test_the_watchdog_sees_shares_nobody_protects() -> None:
    stack = ExitStack(DAY)
    watchdog = Watchdog(stack)
    try:

        async def steps() -> None:
            await stack.minute(stack.bar(10.0, 10.05, 9.95, 10.0))
            _buy_behind_the_daemons_back(stack, 100)
            for _ in range(2):
                await stack.minute(stack.bar(10.0, 10.05, 9.95, 10.0))

        stack.run(steps())
        assert stack.mirror.position == 100
        watchdog.check()
        assert not watchdog.violations  # 65 s + 10 s allowed: not yet
        # the buy filled at 09:33:00 (with the first bar after it): 75 s allowed
        stack.run(stack.until(stack.clock.now() + timedelta(seconds=71)))
        watchdog.check()
        assert len(watchdog.violations) == 1 and "UNPROTECTED" in watchdog.violations[0]
    finally:
        stack.close()


def test_the_watchdog_sees_two_exit_sells() -> None:
    stack = ExitStack(DAY)
    watchdog = Watchdog(stack)
    try:

        async def steps() -> None:
            await stack.minute(stack.bar(10.0, 10.05, 9.95, 10.0))
            _buy_behind_the_daemons_back(stack, 100)
            for _ in range(2):
                await stack.minute(stack.bar(10.0, 10.05, 9.95, 10.0))

        stack.run(steps())
        for _ in range(2):
            stack.exchange.orders.submit_order(
                ACCOUNT,
                symbol=SYMBOL,
                qty=Decimal(50),
                notional=None,
                side="sell",
                type="market",
                time_in_force="day",
                limit_price=None,
                stop_price=None,
                client_order_id=None,
                extended_hours=False,
            )
        assert any("TWO WORKING EXIT SELLS" in v for v in watchdog.violations)
    finally:
        stack.close()


def test_the_guard_sells_nothing_beside_a_sell_it_could_not_cancel() -> None:
    """Found by the 2,000-example run: the guard's flatten met a TP1 sell whose cancel the
    broker refused and sold the rest beside it, two exit sells working for one position.
    Now it sells nothing while that sell works, and tries again after its backoff."""
    machine = ExitMachine()
    try:
        machine.crash_and_trap(entry="partly filled")
        machine.next_order_answer(answer="accepted", times=1)
        machine.next_order_answer(answer="accepted then rejected", times=2)
        machine.next_cancel_answer(answer="refused (order_cancel_rejected)", hold=5.0)
        machine.bar(fracs=(0.0, 0.0, 0.0, 0.0), high_zone=3, low_zone=3)
        _check(machine)
        machine.no_trades(minutes=1)
        _check(machine)
        machine.to_the_end_of_day()
        _check(machine)
        machine.teardown()
    finally:
        _close(machine)
