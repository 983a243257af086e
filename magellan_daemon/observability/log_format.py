"""How a log record reads: one text line for a terminal, or one JSON object per line; and
the structured fields and traceback text every format shares."""

from __future__ import annotations

import logging
import logging.config
import re
from collections.abc import Mapping
from datetime import UTC, datetime

import orjson

# Shorter values (flags like "true", "1") would shred unrelated text if redacted everywhere.
_COLOURS = {
    logging.DEBUG: "\x1b[2m",
    logging.INFO: "\x1b[32m",
    logging.WARNING: "\x1b[33m",
    logging.ERROR: "\x1b[31m",
    logging.CRITICAL: "\x1b[1;31m",
}
_RESET = "\x1b[0m"
_TOKEN_SPLIT = re.compile(r"[\s=,;:()\[\]]+")


# --- shared record helpers --------------------------------------------------------------------


def record_fields(record: logging.LogRecord) -> dict[str, object]:
    """The structured fields a record carries (``extra={"fields": {...}}``), or none."""
    fields = getattr(record, "fields", None)
    return dict(fields) if isinstance(fields, Mapping) else {}


def exception_text(record: logging.LogRecord) -> str:
    """The record's traceback (and stack) text, cached on the record like logging does."""
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    parts = [part for part in (record.exc_text, record.stack_info) if part]
    return "\n".join(parts)


# --- formatters -------------------------------------------------------------------------------


class TextFormatter(logging.Formatter):
    """One readable line: local time, level (coloured on a TTY), short logger name, message,
    then ``key=value`` for each field whose value is not already a word of the message.

    A traceback follows on the next lines, as a person reading a terminal expects.
    """

    def __init__(self, colour: bool = False) -> None:
        super().__init__()
        self._colour = colour

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line (plus its traceback, if any)."""
        message = record.getMessage()
        stamp = datetime.fromtimestamp(record.created).strftime("%Y-%m-%d %H:%M:%S")
        level = f"{record.levelname:<7}"
        if self._colour:
            level = f"{_COLOURS.get(record.levelno, '')}{level}{_RESET}"
        short = record.name.rsplit(".", 1)[-1]
        line = f"{stamp}.{int(record.msecs):03d} {level} {short:<10} {message}"
        extra = _unseen_fields(record_fields(record), message)
        if extra:
            line += "  " + " ".join(f"{k.lower()}={v}" for k, v in extra.items())
        trace = exception_text(record)
        return f"{line}\n{trace}" if trace else line


def _unseen_fields(fields: Mapping[str, object], message: str) -> dict[str, object]:
    words = set(_TOKEN_SPLIT.split(message))
    return {k: v for k, v in fields.items() if v not in ("", None) and str(v) not in words}


class JsonFormatter(logging.Formatter):
    """One orjson object per line: ts, level, logger, msg, the fields (lower-case), exc."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one JSON line."""
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record_fields(record).items():
            entry.setdefault(key.lower(), value)  # never let a field overwrite a core key
        trace = exception_text(record)
        if trace:
            entry["exc"] = trace
        return orjson.dumps(entry, default=str).decode()
