"""The order path's hard cases against the strict simulator (asynchronous cancel and
replace, refusals, faults), through the router as the daemon uses it: real alpaca-py, real
SQLite, the real trade-updates stream, virtual time.

Each test is one defect of issue 12 that the order path must not have:
- a sell before the broker confirmed the stop's cancel (Alpaca holds the shares meanwhile);
- a stop that fills while its cancel is pending (the sell shrinks, the account never short);
- a refused replace (the old stop still rests and is reported as such);
- a step that fails silently drops the steps after it (each is reported instead);
- a lookup that got a 429 is no "not found";
- two entries passing one position slot at once;
- a stop sized on the first partial entry fill (it grows with the later ones);
- a flatten whose sell the broker refused, reported as sent.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from magellan_daemon.domain import client_order_id
from magellan_daemon.execution.router import StrategyRouting
from strategies.api.model import FixedDollars, Intent
from strategies.api.params import RiskLimits
from tests.daemon.stack import KEY, Stack, order_stack

# 2024-12-10 is a regular session; 10:00:20 ET, mid-minute, on real AMC/GME minute bars.
NOW = datetime(2024, 12, 10, 15, 0, 20, tzinfo=UTC)
SIGNAL = datetime(2024, 12, 10, 14, 59, tzinfo=UTC)


@pytest.fixture
async def stack(bars_dir: Path, tmp_path: Path) -> AsyncIterator[Stack]:
    async with order_stack(bars_dir, tmp_path, NOW) as s:
        yield s


def _intent(action: str, leg: str, qty: int | None = None, **kw) -> Intent:
    return Intent(
        strategy=kw.pop("strategy", "bear_trap"),
        symbol=kw.pop("symbol", "AMC"),
        action=action,  # type: ignore[arg-type]
        leg=leg,
        signal_time=kw.pop("signal_time", SIGNAL),
        reason="test",
        qty=qty,
        **kw,
    )


async def _run(stack: Stack, intents: list[Intent], seconds: float = 0.0) -> None:
    """Route intents while virtual time runs ``seconds`` (the broker needs time to answer)."""
    done = stack.router.submit(intents)
    if seconds:
        stack.clock.set_speed(20)
    try:
        await stack.until(lambda: all(f.done() for f in done), "the intents to finish")
    finally:
        stack.clock.set_speed(0)


async def _hold(stack: Stack, qty: int = 100, stop: float | None = 3.0) -> None:
    """Bear Trap holds ``qty`` AMC (bought at the next bar's open), with a resting stop."""
    entry = _intent("buy", "entry", sizing=FixedDollars(dollars=qty * 4.5, price=4.5))
    await _run(stack, [entry])
    await stack.advance(120)  # it fills at the open of the first bar that starts after it
    await stack.until(lambda: stack.ledger.position_qty("bear_trap", "AMC") > 0, "entry fill")
    held = int(stack.ledger.position_qty("bear_trap", "AMC"))
    if stop is not None:
        await _run(stack, [_intent("place_stop", "protective_stop", held, stop_price=stop)], 5)
        await stack.until(lambda: _resting(stack) == held, "the stop to rest")


def _resting(stack: Stack, symbol: str = "AMC") -> int:
    return sum(
        int(Decimal(o["qty"]) - Decimal(o["filled_qty"]))
        for o in stack.broker_orders()
        if o["symbol"] == symbol and o["type"] == "stop" and o["status"] in ("new", "accepted")
    )


def _stop_reports(stack: Stack) -> list[tuple[int, float | None]]:
    return [(u.qty, u.price) for u in stack.updates if u.kind == "stop"]


async def test_the_final_sell_goes_out_only_after_the_broker_confirmed_the_cancel(
    stack: Stack,
) -> None:
    await _hold(stack)
    held = int(stack.ledger.position_qty("bear_trap", "AMC"))
    await _run(stack, [_intent("cancel_stop", "protective_stop"), _intent("sell", "eod", held)], 5)
    orders = stack.broker_orders()
    stop = next(o for o in orders if o["type"] == "stop")
    sell = next(o for o in orders if o["type"] == "market" and o["side"] == "sell")
    assert stop["status"] == "canceled"
    assert sell["status"] in ("new", "accepted", "filled"), sell  # never refused for held qty
    assert _parse(sell["submitted_at"]) >= _parse(stop["canceled_at"])
    assert _stop_reports(stack)[-1] == (0, None)


async def test_a_stop_that_fills_while_its_cancel_is_pending_leaves_nothing_to_sell(
    bars_dir: Path, tmp_path: Path
) -> None:
    async with order_stack(bars_dir, tmp_path, NOW, cancel_latency=120.0) as stack:
        await _hold(stack, stop=None)
        held = int(stack.ledger.position_qty("bear_trap", "AMC"))
        # A stop far above the market: it triggers on the next bar, while its cancel waits.
        high = _intent("place_stop", "protective_stop", held, stop_price=50.0)
        await _run(stack, [high], 5)
        done = stack.router.submit(
            [_intent("cancel_stop", "protective_stop"), _intent("sell", "eod", held)]
        )
        await stack.advance(120)  # the next whole bar fills the stop before the cancel is done
        await stack.until(lambda: all(f.done() for f in done), "cancel and sell")
        assert stack.ledger.position_qty("bear_trap", "AMC") == 0
        assert stack.broker_position("AMC") == 0  # never short
        sells = [o for o in stack.broker_orders() if o["type"] == "market" and o["side"] == "sell"]
        assert sells == []  # the stop sold everything: nothing left to sell
        not_sent = [u for u in stack.updates if u.leg == "eod"]
        assert [(u.kind, u.order_qty) for u in not_sent] == [("rejected", 0)]


async def test_a_refused_replace_reports_the_stop_that_still_rests(stack: Stack) -> None:
    await _hold(stack)
    held = int(stack.ledger.position_qty("bear_trap", "AMC"))
    stack.exchange.faults.update(refuse_next_replaces=1)
    tp1 = held * 40 // 100
    await _run(
        stack,
        [
            _intent("replace_stop", "protective_stop", held - tp1, stop_price=3.0),
            _intent("sell", "tp1", tp1),
        ],
        10,
    )
    assert _stop_reports(stack)[-1] == (held, 3.0)  # the old stop, not the asked-for one
    assert _resting(stack) == held
    # ... and the TP1 sell was not sent: the stop still holds every share
    tp1_updates = [u for u in stack.updates if u.leg == "tp1"]
    assert [u.kind for u in tp1_updates] == ["rejected"]
    assert "held by the protective stop" in tp1_updates[0].reason
    assert not any(o["side"] == "sell" and o["type"] == "market" for o in stack.broker_orders())


async def test_a_failed_cancel_is_reported_and_the_sell_after_it_too(stack: Stack) -> None:
    await _hold(stack)
    held = int(stack.ledger.position_qty("bear_trap", "AMC"))
    stack.exchange.faults.update(http_error_rate=1.0, http_status=503)
    await _run(stack, [_intent("cancel_stop", "protective_stop"), _intent("sell", "eod", held)], 5)
    stack.exchange.faults.update(http_error_rate=0.0)
    assert _stop_reports(stack)[-1] == (held, 3.0)  # the stop still rests: said so
    eod = [u for u in stack.updates if u.leg == "eod"]
    assert [(u.kind, u.order_qty) for u in eod] == [("rejected", 0)]  # not silently dropped
    assert _resting(stack) == held  # the position is still protected


async def test_a_lookup_that_got_a_429_is_not_taken_for_not_found(stack: Stack) -> None:
    row = stack.order_row("mg-bt-AMC-429-entry")
    stack.exchange.faults.update(http_error_rate=1.0, http_status=429)
    await stack.recovery.resolve_unacked("main")
    stack.exchange.faults.update(http_error_rate=0.0)
    assert stack.ledger.order(row.client_order_id).status == "pending_submit"
    assert stack.updates == []  # nobody was told it does not exist


async def test_two_entries_at_once_cannot_both_take_the_last_position_slot(
    bars_dir: Path, tmp_path: Path
) -> None:
    one_slot = RiskLimits(
        max_open_positions=1, max_position_dollars=50_000, max_daily_loss_dollars=10_000
    )
    routing = {"bear_trap": StrategyRouting(account="main", limits=one_slot)}
    async with order_stack(bars_dir, tmp_path, NOW, routing=routing) as stack:
        sizing = FixedDollars(dollars=1000, price=5.0)
        await _run(
            stack,
            [
                _intent("buy", "entry", symbol="AMC", sizing=sizing),
                _intent("buy", "entry", symbol="GME", sizing=sizing),
            ],
        )
        assert len(stack.broker_orders()) == 1
        [blocked] = [u for u in stack.updates if u.kind == "rejected"]
        assert "max open positions" in blocked.reason


async def test_a_stop_placed_on_a_partial_entry_fill_grows_with_the_later_fills(
    stack: Stack,
) -> None:
    stack.exchange.faults.update(partial_fill_ratio=0.5)
    entry = _intent("buy", "entry", sizing=FixedDollars(dollars=450, price=4.5))
    await _run(stack, [entry])
    await stack.advance(120)
    await stack.until(lambda: stack.ledger.position_qty("bear_trap", "AMC") > 0, "first fill")
    first = int(stack.ledger.position_qty("bear_trap", "AMC"))
    assert first < 100
    # What the strategy asks after its first fill: a stop for what it holds then. Alpaca
    # would refuse it as a potential wash trade while the entry still works: it waits.
    done = stack.router.submit([_intent("place_stop", "protective_stop", first, stop_price=3.0)])
    stack.clock.set_speed(60)  # the rest of the entry fills over the next bars
    await stack.until(lambda: all(f.done() for f in done), "stop placed")
    total = int(stack.ledger.position_qty("bear_trap", "AMC"))
    assert total > first  # later fills came while the stop waited for the entry
    # ... and what it asks after the last fill: the stop grows to every share held
    await _run(stack, [_intent("replace_stop", "protective_stop", total, stop_price=3.0)], 5)
    stack.clock.set_speed(0)
    assert _resting(stack) == total == int(stack.broker_position("AMC"))
    assert _stop_reports(stack)[-1] == (total, 3.0)
    refused = [o for o in stack.broker_orders() if o["status"] == "rejected"]
    assert refused == []


async def test_stop_intents_queued_behind_each_other_go_out_as_the_last_one(
    stack: Stack,
) -> None:
    """Fills learned in a burst (a reconciliation after missed stream news) make the
    strategy ask one stop size per fill: only the last one is sent, at once, instead of a
    chain of replaces each waiting for the broker while shares sit unprotected."""
    await _hold(stack, stop=None)
    held = int(stack.ledger.position_qty("bear_trap", "AMC"))
    asks = [held // 3, 2 * held // 3, held]
    await _run(
        stack,
        [_intent("place_stop", "protective_stop", q, stop_price=3.0) for q in asks],
        5,
    )
    stops = [o for o in stack.broker_orders() if o["type"] == "stop"]
    assert [int(Decimal(o["qty"])) for o in stops] == [held]
    assert _resting(stack) == held
    assert _stop_reports(stack)[-1] == (held, 3.0)


async def test_flatten_reports_a_refused_sell_as_refused(stack: Stack) -> None:
    await _hold(stack, stop=None)
    stack.exchange.faults.update(refuse_next_orders=1)
    result = await stack.router.flatten("bear_trap")
    assert result["sells"] == []
    assert [r["symbol"] for r in result["refused"]] == ["AMC"]


@pytest.mark.parametrize(
    "message",
    [
        "trading of AMC is blocked: the symbol cannot be traded now",
        "potential wash trade detected. use complex orders",
        "trade denied due to pattern day trading protection",
    ],
)
async def test_an_exit_refused_with_an_order_level_403_is_a_refusal_not_fatal(
    stack: Stack, message: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 17: a 403 whose text says "blocked" (or any other refusal of the one order)
    was BrokerFatal: exit code 3, no restart, no end-of-day flatten, the position left
    without its exit. It is the broker refusing this sell: reported to the strategy as
    rejected with the broker's words, entries keep going, the next sell goes out."""
    await _hold(stack, stop=None)
    held = int(stack.ledger.position_qty("bear_trap", "AMC"))
    stack.exchange.faults.update(refuse_next_orders=1, refuse_message=message)
    await _run(stack, [_intent("sell", "eod", held)])
    assert stack.fatal == [] and not stack.router.entries_stopped
    assert [u.kind for u in stack.updates if u.leg == "eod"] == ["rejected"]
    sell = client_order_id("bear_trap", "AMC", SIGNAL, "eod")
    assert stack.ledger.order(sell).status == "rejected"
    warnings = [r.message for r in caplog.records if r.levelname == "WARNING" and sell in r.message]
    assert any(message in w for w in warnings), warnings  # the broker's words, at WARNING
    assert stack.broker_position("AMC") == held  # nothing was created at the broker
    later = SIGNAL + timedelta(minutes=1)
    await _run(stack, [_intent("sell", "eod", held, signal_time=later)], 5)
    await stack.advance(120)
    await stack.until(lambda: stack.broker_position("AMC") == 0, "the second sell to fill")


async def test_an_account_level_403_is_fatal(stack: Stack) -> None:
    """The account itself refused (Alpaca's answer for a trading-blocked account): nothing
    will work, entries stop and the daemon is told."""
    stack.exchange.faults.update(
        refuse_next_orders=1, refuse_message="account is not authorized to trade"
    )
    entry = _intent("buy", "entry", sizing=FixedDollars(dollars=450, price=4.5))
    await _run(stack, [entry])
    assert [f.status for f in stack.fatal] == [403]


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def test_a_fresh_order_is_not_looked_up_before_its_first_post(
    bars_dir: Path, tmp_path: Path
) -> None:
    # One request a minute: a lookup first would take it, and the POST would get a 429.
    async with order_stack(bars_dir, tmp_path, NOW, stream=False, rate_limit=1) as stack:
        row = stack.order_row("mg-bt-AMC-fresh-entry")
        assert (await stack.path.send(row)).status in ("new", "accepted")
        assert len(stack.broker_orders()) == 1


async def test_a_silent_stream_is_caught_by_the_open_order_poll(stack: Stack) -> None:
    await _hold(stack, stop=None)
    held = int(stack.ledger.position_qty("bear_trap", "AMC"))
    stack.exchange.faults.update(silent_trade_seconds=3600)  # connected, says nothing
    await _run(stack, [_intent("sell", "eod", held)])
    await stack.advance(120)  # the sell fills at the broker; the socket does not say so
    assert stack.broker_position("AMC") == 0
    assert stack.ledger.position_qty("bear_trap", "AMC") == held  # not heard of it
    assert await stack.recovery.poll_open_orders("main") == 1
    assert stack.ledger.position_qty("bear_trap", "AMC") == 0
    [fill] = [f for f in stack.ledger.fills("bear_trap") if f["side"] == "sell"]
    assert fill["source"] == "poll" and int(fill["qty"]) == held


async def _crashed_before_the_post(stack: Stack, expires: datetime) -> tuple[int, Intent]:
    """A Daily Trend next-open intent whose order row was written, and then the process
    died before the POST."""
    intent = _intent(
        "buy",
        "entry",
        strategy="daily_trend",
        symbol="SPY",
        sizing=FixedDollars(dollars=10_000, price=600.0),
        execute="next_open",
    )
    row = stack.ledger.add_intent(intent, now=NOW, not_before=NOW, expires_at=expires)
    stack.ledger.create_order(
        client_order_id=client_order_id("daily_trend", "SPY", SIGNAL, "entry"),
        account="main",
        strategy="daily_trend",
        symbol="SPY",
        side="buy",
        order_type="market",
        qty=Decimal(16),
        stop_price=None,
        time_in_force="day",
        leg="entry",
        signal_time=SIGNAL,
        intent_id=row.id,
        replaces=None,
        now=NOW,
    )
    return row.id, intent


async def test_a_next_open_order_the_broker_never_got_is_sent_again_through_the_gates(
    stack: Stack,
) -> None:
    intent_id, intent = await _crashed_before_the_post(stack, NOW + timedelta(hours=5))
    await stack.recovery.resolve_unacked("main")
    [row] = stack.ledger.intents("pending")
    assert row.id == intent_id and "sent again" in row.status_reason
    assert stack.updates == []  # the strategy keeps waiting for it: it will be sent
    await stack.router.execute([intent], [intent_id])  # what the next pending run does
    assert [o["client_order_id"] for o in stack.broker_orders()] == [
        client_order_id("daily_trend", "SPY", SIGNAL, "entry")
    ]
    await stack.router.execute([intent], [intent_id])
    assert len(stack.broker_orders()) == 1  # never twice


async def test_a_next_open_order_never_sent_in_its_session_is_not_sent_later(
    stack: Stack,
) -> None:
    await _crashed_before_the_post(stack, NOW - timedelta(minutes=1))  # its session is over
    await stack.recovery.resolve_unacked("main")
    assert stack.ledger.intents("pending") == []
    assert [(u.symbol, u.kind) for u in stack.updates] == [("SPY", "rejected")]
    assert stack.broker_orders() == []


async def test_fills_first_learned_from_the_poll_take_their_executions_own_prices(
    stack: Stack,
) -> None:
    """The open-order poll books what an order filled from its totals (cumulative qty and
    Alpaca's rounded average); the reconciliation then gives each execution its own row at
    its own price, so the ledger and the CSV hold the broker's fills exactly."""
    stack.exchange.faults.update(silent_trade_seconds=3600, partial_fill_ratio=0.4)
    entry = _intent("buy", "entry", sizing=FixedDollars(dollars=100 * 4.5, price=4.5))
    await _run(stack, [entry])
    await stack.advance(600)  # filled in several executions; the socket says nothing
    assert await stack.recovery.poll_open_orders("main") >= 1
    assert stack.ledger.derived_fills("main"), "the poll priced the fills from averages"
    await stack.recovery.reconcile("main")
    executions = sorted(
        (Decimal(a["qty"]), Decimal(a["price"]))
        for a in stack.exchange.accounts.activities(KEY, activity_types=["FILL"])
    )
    booked = sorted((Decimal(f["qty"]), Decimal(f["price"])) for f in stack.ledger.fills())
    assert len(executions) > 1 and booked == executions
    assert not stack.ledger.derived_fills("main")
    assert stack.ledger.position_qty("bear_trap", "AMC") == stack.broker_position("AMC")


# -- one report per intent, attempts of a re-decided exit (issue 17) ------------------------


async def test_a_refused_exit_decided_again_goes_out_as_a_new_attempt(stack: Stack) -> None:
    """A strategy that decides the same exit again (a clock tick reuses the bar's minute)
    after the broker refused it gets a new attempt with its own client_order_id; the refused
    one was once found "already rejected" and the intent marked sent without a word."""
    await _hold(stack, stop=None)
    held = int(stack.ledger.position_qty("bear_trap", "AMC"))
    stack.exchange.faults.update(refuse_next_orders=1)
    await _run(stack, [_intent("sell", "eod", held)], 5)
    await _run(stack, [_intent("sell", "eod", held)], 5)
    await stack.advance(120)
    await stack.until(lambda: stack.ledger.position_qty("bear_trap", "AMC") == 0, "flat")
    first = client_order_id("bear_trap", "AMC", SIGNAL, "eod")
    second = client_order_id("bear_trap", "AMC", SIGNAL, "eod", seq=2)
    assert [o["client_order_id"] for o in stack.broker_orders() if o["side"] == "sell"] == [second]
    assert stack.ledger.order(first).status == "rejected"
    eod = [(u.kind, u.order_qty) for u in stack.updates if u.leg == "eod"]
    assert eod[0] == ("rejected", held)  # the refusal, with the broker's reason
    assert eod[-1] == ("fill", held)
    assert "insufficient" in next(u.reason for u in stack.updates if u.leg == "eod")


async def test_a_stop_step_that_raises_is_reported_once(stack: Stack) -> None:
    """A stop step that raises (here the broker refusing our key) is reported to its
    strategy once: twice made its count of outstanding stop requests reach 0 while another
    was still out."""
    await _hold(stack, stop=None)
    held = int(stack.ledger.position_qty("bear_trap", "AMC"))
    before = len(_stop_reports(stack))
    stack.exchange.faults.update(http_error_rate=1.0, http_status=401)
    await _run(stack, [_intent("place_stop", "protective_stop", held, stop_price=3.0)], 5)
    stack.exchange.faults.update(http_error_rate=0.0)
    assert len(_stop_reports(stack)) - before == 1


async def test_a_replace_refused_on_the_stream_is_a_warning_and_the_stop_works_on(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """Alpaca refuses a replace asynchronously (``order_replace_rejected``): the protective
    stop was not resized, which an operator must see, and the ledger puts it back to work
    (it once stayed ``pending_replace`` for good)."""
    await _hold(stack)
    held = int(stack.ledger.position_qty("bear_trap", "AMC"))
    stack.exchange.faults.update(refuse_next_replaces=1)
    with caplog.at_level(logging.WARNING):
        await _run(stack, [_intent("replace_stop", "protective_stop", held - 10)], 10)
    [stop] = stack.ledger.orders(strategy="bear_trap", symbol="AMC", open_only=True)
    assert stop.status == "new"
    assert any(
        r.levelno == logging.WARNING
        and "order_replace_rejected" in r.getMessage()
        and stop.client_order_id in r.getMessage()
        for r in caplog.records
    )
