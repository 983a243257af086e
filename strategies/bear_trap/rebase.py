"""Bear Trap's state across a split (pure): indicators and the open trade's plan re-based.

The session tracker, ATR and volume mean are scaled as ``strategies.lib.rebase`` says. An open
trade's plan keeps its meaning on the new scale: stop, support, session high, TP levels and
entry price divided by the ratio; entry quantity, position and a pending exit's shares
multiplied (rounded down). The protective stop at the broker is the broker's fact: the
simulator cancels it before the open (Alpaca's handling is not certain); either way the
daemon's ``sync`` after the re-base tells the plan what rests, and ``protect`` then places
(or replaces) the stop for the post-split shares at the re-based level.
"""

from __future__ import annotations

from strategies.bear_trap.plan import TradePlan
from strategies.bear_trap.state import SymbolState
from strategies.lib.rebase import (
    price_after,
    rebase_atr,
    rebase_marker_qty,
    rebase_session,
    rebase_volume,
    shares_after,
)

_PLAN_PRICES = ("stop", "support", "session_high", "tp1_level", "tp2_level", "entry_price")


def rebase_state(st: SymbolState, ratio: float) -> None:
    """One symbol's indicators and plan on the post-split scale."""
    rebase_session(st.session, ratio)
    rebase_atr(st.atr, ratio)
    rebase_volume(st.volume, ratio)
    if st.plan is not None:
        rebase_plan(st.plan, ratio)


def rebase_plan(plan: TradePlan, ratio: float) -> None:
    """An open trade's levels divided by ``ratio``, its share counts multiplied."""
    for name in _PLAN_PRICES:
        setattr(plan, name, price_after(getattr(plan, name), ratio))
    plan.entry_qty = shares_after(plan.entry_qty, ratio)
    plan.position = shares_after(plan.position, ratio)
    rebase_marker_qty(plan.exit_pending, ratio)
    if plan.exit_pending is not None and "stop_before" in plan.exit_pending:
        plan.exit_pending["stop_before"] = price_after(plan.exit_pending["stop_before"], ratio)
    order = plan.stop_order
    if order is not None:
        # What we last asked the broker for, on the new scale; the broker's own word (a
        # cancel, the view at ``sync``) replaces it.
        order["qty"] = shares_after(order["qty"], ratio)
        order["price"] = price_after(order["price"], ratio)
