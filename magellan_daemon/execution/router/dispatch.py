"""What the router's lanes do with an item: send it to its decision, and what a failure or
a superseded stop means for the intent's one report. It is the lanes' ``LaneHandler``."""

from __future__ import annotations

import logging
from collections.abc import Callable

from magellan_daemon.errors import BrokerError, BrokerFatal
from magellan_daemon.execution.router import exits, flatten, stops
from magellan_daemon.execution.router.context import Job, RouteContext, Work
from magellan_daemon.execution.router.entries import Entries
from magellan_daemon.execution.router.reports import not_sent, report_stop
from strategies.api.model import STOP_ACTIONS

log = logging.getLogger(__package__)  # the router's logger: operators and notify match it


class Dispatch:
    """Runs a lane's work item by its kind; reports what the decisions could not."""

    def __init__(
        self, ctx: RouteContext, entries: Entries, on_fatal: Callable[[BrokerFatal], None]
    ) -> None:
        self._ctx = ctx
        self._entries = entries
        self._on_fatal = on_fatal

    def supersedes(self, later: Work, earlier: Work) -> bool:
        """A stop size asked for and then, next in the lane, asked again differently."""
        return stops.superseded(earlier.intent, later.intent)

    async def run(self, ticket: Job) -> object:
        """Execute the item by its kind: a flatten returns its outcome, an intent None."""
        work = ticket.item
        intent = work.intent
        if intent is None:
            return await flatten.flatten_symbol(self._ctx, work)
        if intent.action == "buy":
            await self._entries.enter(ticket)
        elif intent.action == "sell":
            await exits.sell(self._ctx, ticket)
        elif intent.action in ("place_stop", "replace_stop"):
            await stops.set_stop(self._ctx, intent, work.intent_id)
        elif intent.action == "cancel_stop":
            await stops.cancel_stop(self._ctx, intent, work.intent_id)
        else:
            raise ValueError(f"unknown intent action {intent.action!r}")
        return None

    def failed(self, ticket: Job, exc: Exception) -> None:
        """Log the failure; a buy/sell is reported failed, a stop by ``finished``; a fatal
        refusal by the broker goes to ``on_fatal``."""
        work = ticket.item
        intent = work.intent
        what = f"{work.strategy} {work.symbol} {intent.leg if intent else 'flatten'}"
        if isinstance(exc, BrokerError):
            log.error("%s failed: %s", what, exc)
        else:
            log.error("%s failed", what, exc_info=exc)
        if intent is not None:
            reason = f"{type(exc).__name__}: {exc}"[:300]
            self._ctx.mark(work.intent_id, "failed", reason)
            if intent.action in ("buy", "sell"):
                not_sent(self._ctx, ticket, reason, status="failed")
        if isinstance(exc, BrokerFatal):
            self._on_fatal(exc)

    def skipped(self, ticket: Job) -> None:
        """A superseded stop intent: recorded as blocked (``finished`` reports the stop)."""
        self._ctx.mark(ticket.item.intent_id, "blocked", "superseded by a later stop intent")

    def finished(self, ticket: Job) -> None:
        """A stop intent's one report, done or failed: what rests now."""
        intent = ticket.item.intent
        if intent is not None and intent.action in STOP_ACTIONS:
            report_stop(self._ctx, ticket)
