"""The daily summary sent after each close: realised P&L per strategy and what is held."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from decimal import Decimal

from magellan_daemon.ledger.store import Ledger


def daily_summary(ledger: Ledger, strategies: Iterable[str], day: date) -> str:
    """A few lines: the day's realised P&L per strategy and in total, the open positions,
    the halted strategies."""
    lines, total = [], Decimal(0)
    for name in sorted(strategies):
        realized = ledger.realized_on(name, day)
        total += realized
        lines.append(f"{name}: realised {realized:+.2f}")
    lines.append(f"total realised {total:+.2f}")
    held = ledger.positions()
    if held:
        lines.append(
            "held: "
            + ", ".join(f"{p.strategy} {p.symbol} {p.qty:f} @ {p.avg_price:.2f}" for p in held)
        )
    else:
        lines.append("no open positions")
    for halt in ledger.halts():
        lines.append(f"HALTED {halt.strategy}: {halt.reason}")
    return "\n".join(lines)
