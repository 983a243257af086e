"""From the daemon's log to notifications: a logging handler that recognises the records an
operator must hear about (by logger, level and the ``EVENT`` field the daemon already puts
on them) and posts them to the notifier. The log stays the one place events are described;
nothing in the trading code calls the notifier.

- fills: the event sink's ``filled`` lines;
- refused: a sell (protective stop or exit) that ended unfilled (the sink's WARNING), an exit
  not sent while shares are held (the router's WARNING), the position guard's WARNINGs and
  ERRORs (unprotected, held past the close);
- halts: ``magellan halt`` and emergency stops;
- daily_summary: after each close (the daemon's "session ... closed" line), with the day's
  realised P&L per strategy and what is still held;
- reconnects: a reconnect storm (``reconnect_storm`` stream reconnections in 10 minutes);
- fatal: any CRITICAL record (the daemon is about to exit on an error), and a startup that
  failed (the daemon exits without going READY).
"""

from __future__ import annotations

import logging
import re
import time
from collections import deque
from collections.abc import Callable
from datetime import date

from magellan_daemon.notify.notifier import TITLE, Message, Notifier
from magellan_daemon.notify.settings import NotifyConfig

SESSION_CLOSED = re.compile(r"session (\d{4}-\d{2}-\d{2}) closed")
STORM_WINDOW = 600.0  # wall seconds
STARTUP = "startup failed"  # run_cli's ERROR before it exits 1 (the daemon never went READY)
GUARD_EVENTS = {"unprotected", "past_close"}
# First words of the lines that say a sell ended unfilled or an exit did not go out.
ENDED_WORDS = {"rejected", "expired", "canceled", "done_for_day", "suspended", "not"}
HALT_EVENTS = {"halt", "emergency_stop"}
ORDER_LOGGERS = {
    "magellan_daemon.execution.events",
    "magellan_daemon.execution.router",
    "magellan_daemon.execution.order_path",
}

Summary = Callable[[date], str]


class NotifyHandler(logging.Handler):
    """Posts the records that matter to a ``Notifier`` (never blocks, never raises)."""

    def __init__(self, notifier: Notifier, config: NotifyConfig, summary: Summary) -> None:
        super().__init__(level=logging.DEBUG)
        self._notifier = notifier
        self._wanted = set(config.events)
        self._storm = config.reconnect_storm
        self._summary = summary
        self._reconnects: deque[float] = deque()

    def emit(self, record: logging.LogRecord) -> None:
        """Classify the record; post a message when it is one of the wanted events."""
        try:
            message = self._classify(record)
            if message is not None and message.event in self._wanted:
                self._notifier.post(message)
        except Exception:
            self.handleError(record)

    def _classify(self, record: logging.LogRecord) -> Message | None:
        name = record.name
        if not name.startswith("magellan") or name.startswith("magellan_daemon.notify"):
            return None
        fields = getattr(record, "fields", None) or {}
        event = fields.get("EVENT", "")
        text = record.getMessage()
        level = record.levelno
        if level >= logging.CRITICAL or (level >= logging.ERROR and text.startswith(STARTUP)):
            return Message("fatal", f"{TITLE}: FATAL", text, "failure")
        if event == "halt" and "emergency stop" in text:
            return None  # the EMERGENCY STOP line itself was sent
        if event in HALT_EVENTS:
            return Message("halts", f"{TITLE}: {event.replace('_', ' ')}", text, "failure")
        if name == "magellan_daemon.execution.position_guard" and level >= logging.WARNING:
            urgent = event in GUARD_EVENTS or level >= logging.ERROR
            return Message("refused", f"{TITLE}: position guard", text, _level(urgent))
        if name in ORDER_LOGGERS and level >= logging.WARNING and fields.get("SYMBOL"):
            what = "order refused" if text.split(" ", 1)[0] in ENDED_WORDS else "order warning"
            return Message("refused", f"{TITLE}: {what}", text, "warning")
        if name == "magellan_daemon.execution.events" and text.startswith("filled "):
            return Message("fills", f"{TITLE}: fill", _squeeze(text), "success")
        if name.startswith("magellan_daemon.adapters.alpaca.stream") and "reconnected" in text:
            return self._reconnected(text)
        closed = SESSION_CLOSED.match(text) if name == "magellan_daemon.node.daemon" else None
        if closed and "daily_summary" in self._wanted:
            # From the text: the secret redactor may have merged the record's arguments in.
            day = date.fromisoformat(closed.group(1))
            return Message("daily_summary", f"{TITLE}: {day} closed", self._summary(day))
        return None

    def _reconnected(self, text: str) -> Message | None:
        now = time.monotonic()
        self._reconnects.append(now)
        while self._reconnects and now - self._reconnects[0] > STORM_WINDOW:
            self._reconnects.popleft()
        if len(self._reconnects) < self._storm:
            return None
        count = len(self._reconnects)
        self._reconnects.clear()  # one message a storm, not one a reconnection
        body = f"{count} stream reconnections within {STORM_WINDOW / 60:g} minutes; last: {text}"
        return Message("reconnects", f"{TITLE}: reconnect storm", body, "warning")


def _level(urgent: bool) -> str:
    return "failure" if urgent else "warning"


def _squeeze(text: str) -> str:
    return " ".join(text.split())
