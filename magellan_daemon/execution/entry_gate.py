"""Whether an entry may go out, and with how many shares: one pure function over facts.

The router gathers the facts (the account from the broker, the book from the ledger, a
quote) and then, without awaiting anything in between, asks ``decide_entry`` and writes the
order row. Because the event loop runs one lane at a time between awaits, two entries of
different symbols can never both pass one position slot or one dollar of buying power:
entries already written and not yet counted by the broker are part of the facts
(``open_entries`` and ``reserved_dollars``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from strategies.api.model import Sizing
from strategies.api.params import RiskLimits
from strategies.lib.risk import (
    GateResult,
    StrategyBook,
    check_buying_power,
    check_entry,
    check_liquidity,
)
from strategies.lib.sizing import shares_for


@dataclass(frozen=True, slots=True, kw_only=True)
class QuoteFacts:
    """The latest quote (sizes in shares)."""

    bid: float
    ask: float
    bid_size: float
    ask_size: float


@dataclass(frozen=True, slots=True, kw_only=True)
class EntryFacts:
    """Everything an entry decision depends on."""

    symbol: str
    limits: RiskLimits
    halted: str | None
    equity: float
    buying_power: float
    reserved_dollars: float  # our entries written but not yet acknowledged by the broker
    positions: Mapping[str, int]  # the strategy's own shares per symbol
    open_entries: frozenset[str]  # symbols with an entry order of this strategy still open
    entries_today: int
    realised_pnl_today: float
    price: float
    qty: int | None
    sizing: Sizing | None
    quote: QuoteFacts | None = None
    max_spread_pct: float | None = None
    min_liquidity_shares: float | None = None


def decide_entry(facts: EntryFacts) -> GateResult:
    """The shares this entry may buy (``allowed``), or why it may not (``reason``)."""
    if facts.symbol in facts.open_entries:
        return GateResult(allowed=False, qty=0, reason="an entry order is already open")
    qty = facts.qty if facts.qty is not None else 0
    if facts.sizing is not None:
        qty = shares_for(facts.sizing, facts.equity)
    # A symbol whose entry is still working takes a position slot already.
    slots = dict(facts.positions)
    for symbol in facts.open_entries:
        slots[symbol] = max(slots.get(symbol, 0), 1)
    book = StrategyBook(
        open_positions=slots,
        entries_today=facts.entries_today,
        realised_pnl_today=facts.realised_pnl_today,
    )
    gate = check_entry(facts.limits, book, facts.symbol, qty, facts.price, facts.halted)
    if not gate.allowed:
        return gate
    power = facts.buying_power - facts.reserved_dollars
    afforded = check_buying_power(gate.qty, facts.price, power)
    if not afforded.allowed:
        return afforded
    quote = facts.quote
    if quote is not None and facts.max_spread_pct is not None:
        liquidity = check_liquidity(
            quote.bid,
            quote.ask,
            quote.bid_size,
            quote.ask_size,
            facts.max_spread_pct,
            facts.min_liquidity_shares or 0,
        )
        if not liquidity.allowed:
            return liquidity
    reason = afforded.reason or gate.reason
    return GateResult(allowed=True, qty=afforded.qty, reason=reason)


def reference_price(sizing: Sizing | None) -> float:
    """The price an entry is sized and gated at (NaN when the intent carries none)."""
    return float(sizing.price) if sizing is not None else math.nan
