"""Exits: a sell is at most the strategy's own shares minus what its open orders already
hold, including a protective stop whose cancel the broker has not confirmed. Such a sell is
not sent and the strategy is told, so it decides again at the next bar or clock tick. Exits
skip the entry gates: a halt blocks new positions, never the way out."""

from __future__ import annotations

import logging

from magellan_daemon.execution.router.context import Job, RouteContext
from magellan_daemon.execution.router.reports import already_out, not_sent, sent

log = logging.getLogger(__package__)  # the router's logger: operators and notify match it


def sellable(ctx: RouteContext, strategy: str, symbol: str) -> tuple[int, str]:
    """The shares the strategy may sell now, and why that many (for the log and reports)."""
    held = int(ctx.ledger.position_qty(strategy, symbol))
    others, stop = ctx.held_by_orders(strategy, symbol)
    free = held - int(others) - int(stop)
    why = f"holds {held}"
    if others:
        why += f", {others} in open sells"
    if stop:
        why += f", {stop} held by the protective stop"
    return free, why


async def sell(ctx: RouteContext, job: Job) -> None:
    """Send the sell of ``job``, reduced to what is sellable; report it."""
    intent, intent_id = job.item.intent, job.item.intent_id
    assert intent is not None
    cid, working, _ = ctx.attempt(intent)
    if already_out(ctx, job, working):
        return
    if working is None:
        free, why = sellable(ctx, intent.strategy, intent.symbol)
        qty = min(intent.qty or 0, free)
        if qty <= 0:
            not_sent(ctx, job, f"nothing to sell ({why})")
            return
        if qty != intent.qty:
            # The strategy hears the order's own quantity with each fill (order_qty).
            log.info("sell %s reduced to %d of %s (%s)", cid, qty, intent.qty, why)
        working = ctx.new_order(intent, intent_id, cid=cid, side="sell", qty=qty)
    sent(ctx, job, await ctx.path.send(working))
