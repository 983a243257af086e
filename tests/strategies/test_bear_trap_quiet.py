"""Bear Trap without skip records (``explain_skips=False``, the daemon's full-market mode)
decides exactly as with them: the same intents, the same non-skip evaluations, the same
state, bar after bar, on random walks with crashes and traps, with fills booked."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from strategies.api.model import Bar, Intent, OrderUpdate, Step
from strategies.bear_trap.strategy import BearTrap, BearTrapParams
from tests.strategies.test_bear_trap import SESSION, setup, trap

SYMBOLS = ("AMC", "GME", "MULN", "PLUG")


def _walk(rng: random.Random, symbol: str, start: int) -> list[Bar]:
    """After a flat start and a crash, 200 minutes of noisy bars, some of them traps."""
    bars = [*setup(start=0, symbol=symbol), trap(minute=21, symbol=symbol)]
    price = bars[-1].close
    for minute in range(22 + start, 22 + start + 200):
        o = price
        c = max(0.5, o * (1 + rng.gauss(0, 0.03)))
        h = max(o, c) * (1 + rng.random() * 0.02)
        low = min(o, c) * (1 - rng.random() * 0.04)
        price = c
        t = SESSION.open + timedelta(minutes=minute)
        v = 1000.0 * (1 + 5 * rng.random())
        bars.append(
            Bar(symbol=symbol, timeframe="1Min", t=t, open=o, high=h, low=low, close=c, volume=v)
        )
    return bars


def _fills(intents: tuple[Intent, ...], at: Bar) -> list[OrderUpdate]:
    """Each buy or sell filled whole at the next bar's open (a stop intent gets no news)."""
    updates = []
    for i in intents:
        if i.action not in ("buy", "sell"):
            continue
        qty = i.qty or 100
        updates.append(
            OrderUpdate(
                strategy="bear_trap",
                symbol=i.symbol,
                leg=i.leg,
                signal_time=i.signal_time,
                side=i.action,  # type: ignore[arg-type]
                kind="fill",
                time=at.t,
                qty=qty,
                price=at.open,
                filled_qty=qty,
                order_qty=qty,
            )
        )
    return updates


def _decided(step: Step) -> tuple:
    return step.intents, tuple(e for e in step.evaluations if e.decision != "skip")


@pytest.mark.parametrize("seed", range(6))
def test_quiet_mode_decides_exactly_as_the_explained_one(seed: int) -> None:
    rng = random.Random(seed)
    params = BearTrapParams(universe=SYMBOLS, min_price=1.0, max_price=12.0, exclude=("PLUG",))
    explained, quiet = BearTrap(params), BearTrap(params, explain_skips=False)
    bars = sorted(
        (b for n, s in enumerate(SYMBOLS) for b in _walk(rng, s, n)),
        key=lambda b: (b.t, b.symbol),
    )
    owed: dict[str, tuple[Intent, ...]] = {}
    entries = 0
    for b in bars:
        for update in _fills(owed.pop(b.symbol, ()), b):
            assert _decided(explained.on_order_update(update)) == _decided(
                quiet.on_order_update(update)
            )
        one, two = explained.on_bar(b, session=SESSION), quiet.on_bar(b, session=SESSION)
        assert _decided(one) == _decided(two), b
        assert all(e.decision != "skip" for e in two.evaluations)
        entries += sum(i.leg == "entry" for i in one.intents)
        if one.intents:
            owed[b.symbol] = one.intents
    assert explained.snapshot() == quiet.snapshot()
    assert entries > 0  # the walks do reach the entry rule
