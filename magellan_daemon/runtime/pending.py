"""Intents that wait in the ledger before the router sends them, and when they expire.

The one home of the rule, used by the strategy runners and by the daemon's startup:

- an intent to execute at the next open (``execute="next_open"``) is written pending with
  ``not_before`` = the next session's open + the strategy's execution delay and
  ``expires_at`` = that session's close (``hold_for_next_open``); it is due from
  ``not_before`` and expires, unsent, at ``expires_at`` (``due_next_open``);
- an intent to execute at once (``execute="now"``) is handed to the router as it is written,
  so one still pending at startup was written by a previous process that never routed it:
  its moment has passed, and it expires (its strategy decides again), unless the ledger
  holds an order for it, in which case it was sent (``expire_unrouted``).

A sent intent is not pending any more and the router never sends a ``client_order_id``
twice, so asking again what is due is always safe.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from magellan_daemon.ledger.store import Ledger
from magellan_daemon.sessions import SessionBook
from strategies.api.model import Intent

# Under the runner's name, whose lines these were before they moved here.
log = logging.getLogger("magellan_daemon.runtime.strategy_runner")


def hold_for_next_open(
    ledger: Ledger,
    sessions: SessionBook,
    strategy: str,
    intent: Intent,
    now: datetime,
    delay: timedelta,
) -> None:
    """Write ``intent`` pending for the open of the next session that has not opened yet
    (+ ``delay``), expiring at that session's close; with no such session in the calendar
    it is not written, and that is logged at ERROR."""
    session = sessions.current_or_next(now)
    if session is not None and session.open <= now:
        session = sessions.next_after(session)
    if session is None:
        log.error("no next session in the calendar for %s %s", strategy, intent.symbol)
        return
    ledger.add_intent(
        intent,
        now=now,
        not_before=session.open + delay,
        expires_at=session.close,
    )
    log.info(
        "pending   %-12s %-6s %s %s at %s",
        strategy,
        intent.symbol,
        intent.action,
        intent.leg,
        (session.open + delay).isoformat(),
    )


def due_next_open(
    ledger: Ledger, strategy: str, now: datetime
) -> tuple[list[Intent], list[int], int]:
    """``strategy``'s pending next-open intents due at ``now`` (with their ledger ids), and
    how many expired now (each marked expired, with a WARNING line)."""
    due: list[Intent] = []
    due_ids: list[int] = []
    expired = 0
    for row in ledger.intents("pending"):
        if row.intent.strategy != strategy or row.intent.execute != "next_open":
            continue
        if row.expires_at is not None and now >= row.expires_at:
            ledger.set_intent_status(row.id, "expired", "session ended before it was sent", now)
            log.warning(
                "expired   %-12s %-6s %s %s: its session ended before it was sent",
                strategy,
                row.intent.symbol,
                row.intent.action,
                row.intent.leg,
                extra=_expired_fields(row.id, row.intent),
            )
            expired += 1
        elif row.not_before is None or row.not_before <= now:
            due.append(row.intent)
            due_ids.append(row.id)
    return due, due_ids, expired


def expire_unrouted(ledger: Ledger, now: datetime) -> None:
    """At startup: every pending intent to execute at once is marked sent (the ledger has an
    order for it) or expired (never routed; a WARNING line says its strategy decides again)."""
    for row in ledger.intents("pending"):
        if row.intent.execute != "now":
            continue
        if ledger.orders_of_intent(row.id):
            ledger.set_intent_status(row.id, "sent", "sent before the restart", now)
            continue
        ledger.set_intent_status(row.id, "expired", "not routed before a restart", now)
        log.warning(
            "expired   %-12s %-6s %s %s: not routed before the restart; its strategy decides again",
            row.intent.strategy,
            row.intent.symbol,
            row.intent.action,
            row.intent.leg,
            extra=_expired_fields(row.id, row.intent),
        )


def _expired_fields(intent_id: int, intent: Intent) -> dict[str, object]:
    """The journal fields of an intent's expiry (its one answer: never rate-limited away)."""
    return {
        "fields": {
            "STRATEGY": intent.strategy,
            "SYMBOL": intent.symbol,
            "INTENT_ID": intent_id,
            "EVENT": "expired",
        }
    }
