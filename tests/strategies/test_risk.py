"""Risk gates for entries: one row per gate, each blocking (or reducing) on its own."""

from __future__ import annotations

import math

import pytest

from strategies.api.params import RiskLimits
from strategies.lib.risk import (
    GateResult,
    StrategyBook,
    check_buying_power,
    check_entry,
    check_liquidity,
)

LIMITS = RiskLimits(
    max_open_positions=2,
    max_position_dollars=10_000,
    max_trades_per_day=3,
    max_daily_loss_dollars=1_000,
)
BOOK = StrategyBook(open_positions={"AAA": 10}, entries_today=1, realised_pnl_today=-100.0)


@pytest.mark.parametrize(
    ("book", "symbol", "qty", "price", "halted", "expected"),
    [
        # within every limit: untouched
        (BOOK, "BBB", 50, 100.0, None, GateResult(allowed=True, qty=50)),
        # halted wins over everything else
        (
            BOOK,
            "BBB",
            50,
            100.0,
            "drawdown 12%",
            GateResult(allowed=False, qty=0, reason="halted: drawdown 12%"),
        ),
        (BOOK, "AAA", 50, 100.0, None, GateResult(allowed=False, qty=0, reason="AAA already held")),
        (
            StrategyBook(open_positions={"AAA": 10, "CCC": 5}),
            "BBB",
            50,
            100.0,
            None,
            GateResult(allowed=False, qty=0, reason="max open positions 2 >= 2"),
        ),
        # a zero entry in the book is not a position
        (
            StrategyBook(open_positions={"AAA": 10, "CCC": 0}),
            "BBB",
            50,
            100.0,
            None,
            GateResult(allowed=True, qty=50),
        ),
        (
            StrategyBook(entries_today=3),
            "BBB",
            50,
            100.0,
            None,
            GateResult(allowed=False, qty=0, reason="max trades per day 3 >= 3"),
        ),
        (
            StrategyBook(realised_pnl_today=-1_000.0),
            "BBB",
            50,
            100.0,
            None,
            GateResult(allowed=False, qty=0, reason="daily loss 1000.00 >= 1000.00"),
        ),
        # a profit today never blocks
        (
            StrategyBook(realised_pnl_today=5_000.0),
            "BBB",
            50,
            100.0,
            None,
            GateResult(allowed=True, qty=50),
        ),
        # the dollar cap reduces instead of blocking
        (
            BOOK,
            "BBB",
            150,
            100.0,
            None,
            GateResult(allowed=True, qty=100, reason="qty 150 reduced to 100: cap $10,000"),
        ),
        # ... unless one share is already above it
        (BOOK, "BBB", 1, 20_000.0, None, GateResult(allowed=False, qty=0, reason="size 0")),
        (BOOK, "BBB", 0, 100.0, None, GateResult(allowed=False, qty=0, reason="size 0")),
        (
            BOOK,
            "BBB",
            5,
            math.nan,
            None,
            GateResult(allowed=False, qty=0, reason="invalid price nan"),
        ),
    ],
)
def test_check_entry(
    book: StrategyBook,
    symbol: str,
    qty: int,
    price: float,
    halted: str | None,
    expected: GateResult,
) -> None:
    assert check_entry(LIMITS, book, symbol, qty, price, halted) == expected


def test_no_trade_limit_when_unset() -> None:
    limits = LIMITS.model_copy(update={"max_trades_per_day": None})
    assert check_entry(limits, StrategyBook(entries_today=999), "BBB", 1, 1.0, None).allowed


@pytest.mark.parametrize(
    ("qty", "price", "buying_power", "expected"),
    [
        (10, 100.0, 1_000.0, GateResult(allowed=True, qty=10)),
        (
            10,
            100.0,
            550.0,
            GateResult(allowed=True, qty=5, reason="qty 10 reduced to 5: buying power 550.00"),
        ),
        (
            10,
            100.0,
            99.0,
            GateResult(allowed=False, qty=0, reason="buying power 99.00 < price 100.00"),
        ),
        (10, 100.0, 0.0, GateResult(allowed=False, qty=0, reason="no buying power (0.0)")),
        (10, 100.0, math.nan, GateResult(allowed=False, qty=0, reason="no buying power (nan)")),
        (0, 100.0, 1_000.0, GateResult(allowed=False, qty=0, reason="size 0")),
    ],
)
def test_check_buying_power(
    qty: int, price: float, buying_power: float, expected: GateResult
) -> None:
    assert check_buying_power(qty, price, buying_power) == expected


@pytest.mark.parametrize(
    ("bid", "ask", "bid_size", "ask_size", "allowed", "reason"),
    [
        (9.95, 10.05, 100, 100, True, ""),  # spread 0.1 / 10 = 1%
        (9.90, 10.10, 100, 100, True, ""),  # exactly 2%: allowed
        (9.80, 10.20, 100, 100, False, "spread 0.0400 > 0.0200"),
        (9.95, 10.05, 100, 49, False, "ask size 49 < 50 shares"),
        (9.95, 10.05, 10, 100, False, "bid size 10 < 50 shares"),
        (9.95, 10.05, 50, 50, True, ""),
        (10.05, 9.95, 100, 100, False, "crossed quote (bid 10.05, ask 9.95)"),
        (0.0, 10.05, 100, 100, False, "no usable quote (bid 0.0, ask 10.05)"),
        (math.nan, 10.05, 100, 100, False, "no usable quote (bid nan, ask 10.05)"),
    ],
)
def test_check_liquidity(
    bid: float, ask: float, bid_size: float, ask_size: float, allowed: bool, reason: str
) -> None:
    result = check_liquidity(
        bid, ask, bid_size, ask_size, max_spread_pct=0.02, min_liquidity_shares=50
    )
    assert (result.allowed, result.reason) == (allowed, reason)
