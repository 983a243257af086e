"""The two filters every log handler carries: the warning rate limiter (identical warnings
past a burst become one summary) and the secret redactor."""

from __future__ import annotations

import logging
import logging.config
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from magellan_daemon.observability.log_format import exception_text

REDACTED = "[REDACTED]"
# Shorter values (flags like "true", "1") would shred unrelated text if redacted everywhere.
MIN_SECRET_LEN = 6
SUMMARY_ATTR = "rate_limit_summary"


# --- filters ----------------------------------------------------------------------------------


class SecretRedactor(logging.Filter):
    """Replaces known secret values in a record's message, arguments, fields and traceback."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()
        for value in secrets:
            self.add(value)

    @property
    def secrets(self) -> tuple[str, ...]:
        """The values being redacted, longest first."""
        return self._secrets

    def add(self, value: str) -> None:
        """Redact ``value`` from now on (ignored when too short to be a credential)."""
        if len(value) < MIN_SECRET_LEN:
            return
        with self._lock:
            # Longest first, so a secret that contains another is replaced whole.
            self._secrets = tuple(sorted({*self._secrets, value}, key=len, reverse=True))

    def redact(self, text: str) -> str:
        """``text`` with every known secret replaced."""
        for value in self._secrets:
            if value in text:
                text = text.replace(value, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place; never drops it."""
        if not self._secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must still be logged, and redacted
            message = f"{record.msg} {record.args}"
        record.msg, record.args = self.redact(message), ()
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping):
            record.fields = {
                key: self.redact(value) if isinstance(value, str) else value
                for key, value in fields.items()
            }
        if record.exc_info or record.exc_text:
            exception_text(record)
            record.exc_text = self.redact(record.exc_text or "")
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


@dataclass(slots=True)
class _Window:
    start: float
    count: int = 0
    suppressed: int = 0
    level: int = logging.WARNING


class WarningRateLimiter(logging.Filter):
    """Lets through at most ``burst`` WARNING+ records per (logger, message template) in each
    ``window_s`` window; the rest are dropped and counted.

    A window's summary ("suppressed K similar messages") is emitted, through the same logger,
    with the first record of any kind handled after that window ended.
    """

    def __init__(
        self,
        window_s: float = 60.0,
        burst: int = 5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._window_s = window_s
        self._burst = burst
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, str], _Window] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a record over its window's budget."""
        if getattr(record, SUMMARY_ATTR, False):
            return True
        now = self._clock()
        for key, window in self._close_ended(now):
            self._emit_summary(key, window)
        if record.levelno < logging.WARNING:
            return True
        # Messages about different orders (or intents not yet orders) are not "similar":
        # each refusal of an exit or a protective stop, each intent's expiry, is that
        # request's one answer and must be seen, however many a burst of them brings.
        fields = getattr(record, "fields", None)
        order = (
            str(fields.get("CLIENT_ORDER_ID") or fields.get("INTENT_ID") or "")
            if isinstance(fields, dict)
            else ""
        )
        key = (record.name, f"{record.msg}{order and ' ' + order}")
        with self._lock:
            window = self._windows.setdefault(key, _Window(start=now, level=record.levelno))
            window.count += 1
            if window.count <= self._burst:
                return True
            window.suppressed += 1
            return False

    def _close_ended(self, now: float) -> list[tuple[tuple[str, str], _Window]]:
        with self._lock:
            ended = [k for k, w in self._windows.items() if now - w.start >= self._window_s]
            closed = [(k, self._windows.pop(k)) for k in ended]
        return [(k, w) for k, w in closed if w.suppressed]

    def _emit_summary(self, key: tuple[str, str], window: _Window) -> None:
        name, template = key
        logger = logging.getLogger(name)
        summary = logger.makeRecord(
            name,
            window.level,
            __file__,
            0,
            "suppressed %d similar messages in %ds: %s",
            (window.suppressed, round(self._window_s), template),
            None,
            extra={SUMMARY_ATTR: True},
        )
        logger.handle(summary)
