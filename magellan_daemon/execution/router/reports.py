"""The one report of each intent: what its strategy is told about how it ended.

A buy or sell is reported as not sent (``not_sent``: the strategy hears a ``rejected``
update with the reason) or as sent (``sent``: its fills or its end are the report, told by
the event sink). A stop intent is reported after every step, done or failed, with the stop
that rests now (``report_stop``). Each is made once; a second is an error in the router.
"""

from __future__ import annotations

import logging

from magellan_daemon.execution.router.context import (
    ENDED_UNFILLED,
    UNSENT,
    Job,
    RouteContext,
)
from magellan_daemon.ledger.store import OrderRow

log = logging.getLogger(__package__)  # the router's logger: operators and notify match it


def not_sent(ctx: RouteContext, job: Job, reason: str, status: str = "blocked") -> None:
    """Tell the strategy its buy/sell was not sent and why (the intent's one report)."""
    intent = job.item.intent
    assert intent is not None
    if not job.claim_report():
        log.error("intent %s %s %s reported twice", intent.strategy, intent.symbol, intent.leg)
        return
    # An exit the strategy holds shares for and that did not go out leaves a position
    # longer than meant: an operator should see it.
    held = ctx.ledger.position_qty(intent.strategy, intent.symbol)
    level = logging.WARNING if intent.action == "sell" and held > 0 else logging.INFO
    log.log(
        level,
        "not sent  %-12s %-6s %s: %s",
        intent.strategy,
        intent.symbol,
        intent.leg,
        reason,
        extra={"fields": {"STRATEGY": intent.strategy, "SYMBOL": intent.symbol, "EVENT": status}},
    )
    ctx.mark(job.item.intent_id, status, reason)
    ctx.sink.not_sent(intent, reason)


def sent(ctx: RouteContext, job: Job, row: OrderRow, note: str = "") -> None:
    """The intent went out as ``row``: its fills or its end are the strategy's report
    (the event sink tells it); a refusal already told it so."""
    job.reported = True
    status = "failed" if row.status in ENDED_UNFILLED else "sent"
    ctx.mark(job.item.intent_id, status, note or row.status)


def already_out(ctx: RouteContext, job: Job, working: OrderRow | None) -> bool:
    """A repeated intent whose order is out at the broker: that order's fills or end
    answer it (the strategy hears them under the same leg and signal time)."""
    if working is None or working.status in UNSENT:
        return False
    sent(ctx, job, working, f"already {working.status} as {working.client_order_id}")
    return True


def report_stop(ctx: RouteContext, job: Job) -> None:
    """Tell the strategy what protective stop rests now (a fact from the ledger): the
    one report of a stop intent."""
    intent = job.item.intent
    assert intent is not None
    if not job.claim_report():
        log.error("stop intent %s %s reported twice", intent.strategy, intent.symbol)
        return
    stop = ctx.open_stop(intent.strategy, intent.symbol)
    _, resting = ctx.held_by_orders(intent.strategy, intent.symbol)
    ctx.sink.stop_report(
        intent.strategy,
        intent.symbol,
        intent.signal_time if stop is None else stop.signal_time,
        resting,
        None if stop is None else stop.stop_price,
    )
