"""Every branch of the router ends each intent in exactly one report to its strategy
(issue 17): filled, refused with the broker's reason, not sent with why, or, for a stop
intent, the stop that rests now. Against the simulator (real alpaca-py, real SQLite).

A buy or sell that went out is reported by its order's end (the fill that completes it, or
the refusal, cancel or expiry); one that did not go out by a ``rejected`` update saying why.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from strategies.api.model import FixedDollars, Intent, OrderUpdate
from tests.daemon.execution.test_order_path import NOW, _hold, _intent
from tests.daemon.stack import Stack, order_stack

Case = Callable[[Stack], Awaitable[list[Intent]]]


@pytest.fixture
async def stack(bars_dir: Path, tmp_path: Path) -> AsyncIterator[Stack]:
    async with order_stack(bars_dir, tmp_path, NOW) as s:
        yield s


def _buy(dollars: float = 450.0) -> Intent:
    return _intent("buy", "entry", sizing=FixedDollars(dollars=dollars, price=4.5))


def _held(stack: Stack) -> int:
    return int(stack.ledger.position_qty("bear_trap", "AMC"))


async def entry_filled(stack: Stack) -> list[Intent]:
    return [_buy()]


async def entry_blocked_by_a_gate(stack: Stack) -> list[Intent]:
    return [_buy(dollars=1.0)]  # sized to 0 shares


async def entry_refused_by_the_broker(stack: Stack) -> list[Intent]:
    stack.exchange.faults.update(refuse_next_orders=1)
    return [_buy()]


async def entry_accepted_then_rejected(stack: Stack) -> list[Intent]:
    stack.exchange.faults.update(reject_next_orders=1)
    return [_buy()]


async def entry_with_entries_stopped(stack: Stack) -> list[Intent]:
    stack.router.entries_stopped = "the test"
    return [_buy()]


async def entry_whose_account_cannot_be_read(stack: Stack) -> list[Intent]:
    stack.exchange.faults.update(http_error_rate=1.0, http_status=503)
    return [_buy()]


async def sell_with_nothing_held(stack: Stack) -> list[Intent]:
    return [_intent("sell", "eod", 10)]


async def sell_filled(stack: Stack) -> list[Intent]:
    await _hold(stack, stop=None)
    return [_intent("sell", "eod", _held(stack))]


async def sell_reduced_to_what_is_held(stack: Stack) -> list[Intent]:
    await _hold(stack, stop=None)
    return [_intent("sell", "eod", _held(stack) + 50)]


async def sell_refused_then_decided_again(stack: Stack) -> list[Intent]:
    await _hold(stack, stop=None)
    stack.exchange.faults.update(refuse_next_orders=1)
    return [_intent("sell", "eod", _held(stack)), _intent("sell", "eod", _held(stack))]


async def sell_held_by_the_stop(stack: Stack) -> list[Intent]:
    await _hold(stack)
    return [_intent("sell", "tp1", 10)]


async def stop_placed(stack: Stack) -> list[Intent]:
    await _hold(stack, stop=None)
    return [_intent("place_stop", "protective_stop", _held(stack), stop_price=3.0)]


async def stop_refused(stack: Stack) -> list[Intent]:
    await _hold(stack, stop=None)
    stack.exchange.faults.update(refuse_next_orders=1)
    return [_intent("place_stop", "protective_stop", _held(stack), stop_price=3.0)]


async def stop_with_nothing_to_protect(stack: Stack) -> list[Intent]:
    return [_intent("place_stop", "protective_stop", 10, stop_price=3.0)]


async def stop_replace_refused(stack: Stack) -> list[Intent]:
    await _hold(stack)
    stack.exchange.faults.update(refuse_next_replaces=1)
    return [_intent("replace_stop", "protective_stop", 40, stop_price=3.5)]


async def stop_cancelled(stack: Stack) -> list[Intent]:
    await _hold(stack)
    return [_intent("cancel_stop", "protective_stop")]


async def stop_cancel_refused(stack: Stack) -> list[Intent]:
    await _hold(stack)
    stack.exchange.faults.update(refuse_next_cancels=1)
    return [_intent("cancel_stop", "protective_stop")]


async def stop_step_that_raises(stack: Stack) -> list[Intent]:
    await _hold(stack, stop=None)
    stack.exchange.faults.update(http_error_rate=1.0, http_status=401)
    return [_intent("place_stop", "protective_stop", _held(stack), stop_price=3.0)]


async def stops_superseded_in_the_lane(stack: Stack) -> list[Intent]:
    await _hold(stack, stop=None)
    held = _held(stack)
    return [
        _intent("place_stop", "protective_stop", held, stop_price=3.0),
        _intent("replace_stop", "protective_stop", held, stop_price=3.2),
    ]


CASES: list[Case] = [
    entry_filled,
    entry_blocked_by_a_gate,
    entry_refused_by_the_broker,
    entry_accepted_then_rejected,
    entry_with_entries_stopped,
    entry_whose_account_cannot_be_read,
    sell_with_nothing_held,
    sell_filled,
    sell_reduced_to_what_is_held,
    sell_refused_then_decided_again,
    sell_held_by_the_stop,
    stop_placed,
    stop_refused,
    stop_with_nothing_to_protect,
    stop_replace_refused,
    stop_cancelled,
    stop_cancel_refused,
    stop_step_that_raises,
    stops_superseded_in_the_lane,
]


def _ends(update: OrderUpdate) -> bool:
    """Whether ``update`` is the end of an intent's story (what the strategy waits for). The
    protective stop order's own news (refused, cancelled) is order news: a stop intent's
    report is the ``stop`` update saying what rests."""
    if update.leg == "protective_stop" and update.kind != "stop":
        return False
    if update.kind == "fill":
        return update.order_qty is not None and update.filled_qty >= update.order_qty
    return True  # rejected / canceled / expired / not sent / the stop report


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.__name__)
async def test_every_intent_ends_in_exactly_one_report(stack: Stack, case: Case) -> None:
    intents = await case(stack)
    before = len(stack.updates)
    done = stack.router.submit(intents)
    stack.clock.set_speed(20)
    try:
        await stack.until(lambda: all(f.done() for f in done), "the intents to be executed")
        stack.exchange.faults.update(http_error_rate=0.0)
        await stack.until(lambda: _only_stops_open(stack), "the orders to end")
    finally:
        stack.clock.set_speed(0)
    news = list(stack.updates[before:])
    for intent in intents:
        stop = intent.action in ("place_stop", "replace_stop", "cancel_stop")
        report = next(
            (
                u
                for u in news
                if _ends(u) and (u.kind == "stop") == stop and (stop or u.leg == intent.leg)
            ),
            None,
        )
        assert report is not None, f"{intent.action} {intent.leg}: no report in {news}"
        news.remove(report)
    assert [u for u in news if _ends(u)] == [], "more than one report for an intent"


def _only_stops_open(stack: Stack) -> bool:
    return all(o.leg == "protective_stop" for o in stack.ledger.orders(open_only=True))
