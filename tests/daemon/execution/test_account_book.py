"""The entry gate's account kept in memory (``AccountBook`` in the router) against the
simulator over loopback: it agrees with ``GET /v2/account`` once the news of a fill or a
cancel was applied, never shows more buying power than the broker while an order is open,
and is read by REST when it is not known (startup, after the trade stream reconnected)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from magellan_daemon.execution.account_book import AccountBook
from strategies.api.model import FixedDollars, Intent
from tests.daemon.stack import Stack, order_stack

NOW = datetime(2024, 12, 10, 15, 0, tzinfo=UTC)  # 10:00 ET, session open


@pytest.fixture
async def stack(bars_dir: Path, tmp_path: Path) -> AsyncIterator[Stack]:
    async with order_stack(bars_dir, tmp_path, NOW) as stack:
        stack.router.keep_accounts_in_memory()
        stack.router.account_unknown("main")  # what the daemon does on every connect
        yield stack


def _entry(symbol: str, dollars: float, price: float) -> Intent:
    return Intent(
        strategy="bear_trap",
        symbol=symbol,
        action="buy",
        leg="entry",
        signal_time=NOW - timedelta(minutes=1),
        reason="test",
        sizing=FixedDollars(dollars=dollars, price=price),
    )


def _last_close(stack: Stack, symbol: str) -> float:
    """The close of the symbol's last bar: the price a strategy sizes an entry at."""
    bars = stack.exchange.market.minute_bars_ending_at(NOW)
    return next(b.close for b in bars if b.symbol == symbol)


def _book(stack: Stack) -> AccountBook:
    books = stack.router._entries.books
    assert books is not None
    return books["main"]


async def _settled(stack: Stack) -> AccountBook:
    """The book once its background reads caught up with the news applied so far."""
    book = _book(stack)
    await stack.until(lambda: not book._refreshing, "the account refresh")
    return book


def _no_background_reads(book: AccountBook) -> None:
    """From here the book moves by the news alone (a read in flight would be coalesced)."""
    book._refreshing = True


async def test_the_book_agrees_with_rest_after_a_fill(stack: Stack) -> None:
    book = await _settled(stack)
    before = await stack.broker.account_info()
    assert book.account() == before
    _no_background_reads(book)
    await stack.router.execute([_entry("AMC", 1000.0, _last_close(stack, "AMC"))])
    open_now = await stack.broker.account_info()
    shown = book.account()
    assert shown is not None and shown.buying_power <= open_now.buying_power
    assert shown.buying_power < before.buying_power  # the open entry is held
    await stack.advance(60)  # the next bar fills the market order
    await stack.until(lambda: stack.broker_position("AMC") > 0, "the fill")
    await stack.until(lambda: stack.ledger.positions("bear_trap") != [], "the fill news")
    by_news, rest = book.account(), await stack.broker.account_info()
    assert by_news is not None
    assert abs(by_news.buying_power - rest.buying_power) <= Decimal("0.01")  # cents rounding
    book._refreshing = False
    book.refresh_soon()
    book = await _settled(stack)
    assert book.account() == await stack.broker.account_info()


async def test_the_book_agrees_with_rest_after_a_cancel(stack: Stack) -> None:
    _no_background_reads(await _settled(stack))
    await stack.router.execute([_entry("GME", 2000.0, _last_close(stack, "GME"))])
    row = next(o for o in stack.ledger.orders(strategy="bear_trap", open_only=True))
    assert row.broker_order_id is not None
    await stack.broker.cancel_order(row.broker_order_id)
    await stack.advance(3)  # the simulator's cancel latency is 2 virtual seconds
    await stack.until(
        lambda: stack.ledger.order(row.client_order_id).status == "canceled", "the cancel"
    )
    book = _book(stack)
    assert book.account() == await stack.broker.account_info()  # by the news alone
    book._refreshing = False
    assert book.account() == await stack.broker.account_info()


async def test_an_unknown_book_is_read_by_rest_before_an_entry(stack: Stack) -> None:
    book = await _settled(stack)
    stack.router.account_unknown("main")  # a reconnect: news may have been missed
    reads = book.reads
    assert book.account() is None  # no guess: nothing to trade on until a read answers
    await stack.router.execute([_entry("AMC", 1000.0, _last_close(stack, "AMC"))])
    assert book.reads > reads
    assert stack.ledger.orders(strategy="bear_trap", open_only=True)
    book = await _settled(stack)
    shown = book.account()
    assert shown is not None
    assert shown.buying_power <= (await stack.broker.account_info()).buying_power
