"""The daemon's one logging setup: terminal text, orjson lines, or journald-native entries.

``logging_config`` returns a ``logging.config.dictConfig`` dict; only the CLI applies it,
through ``configure_logging``. Every format shares two handler filters: a rate limiter for
repeated warnings and a secret redactor. Order lines carry structured fields in
``extra={"fields": {...}}`` (see ``events.log_fields``); each format renders them its own way.

The formats are in ``log_format`` (text, JSON) and ``journal`` (journald's native protocol,
spoken by the handler itself), the filters in ``log_filters``.
"""

from __future__ import annotations

import logging
import logging.config
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TextIO

from magellan_daemon.observability.journal import JOURNAL_SOCKET, JournalHandler
from magellan_daemon.observability.log_filters import (
    MIN_SECRET_LEN,
    SecretRedactor,
    WarningRateLimiter,
)
from magellan_daemon.observability.log_format import JsonFormatter, TextFormatter

LogFormat = Literal["auto", "text", "json", "journal"]
FORMATS: tuple[str, ...] = ("auto", "text", "json", "journal")
# Shorter values (flags like "true", "1") would shred unrelated text if redacted everywhere.
SECRET_ENV_SUFFIXES = ("_SECRET_KEY", "_SECRET", "_KEY_ID")
SECRET_ENV_PREFIX = "APCA_"
QUIET_LOGGERS = {"apscheduler": "WARNING"}


# --- choosing the format ----------------------------------------------------------------------


def journal_stream_matches(journal_stream: str | None, fd: int) -> bool:
    """True when ``$JOURNAL_STREAM`` ("device:inode") names the file behind ``fd``: systemd's
    documented test that this stream is connected to the journal."""
    if not journal_stream:
        return False
    try:
        device, inode = (int(part) for part in journal_stream.split(":"))
        stat = os.fstat(fd)
    except (ValueError, OSError):
        return False
    return (stat.st_dev, stat.st_ino) == (device, inode)


def resolve_format(fmt: str, environ: Mapping[str, str], stream: TextIO) -> str:
    """The concrete format for ``fmt``: ``auto`` is journal under systemd, else text."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown log format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if fmt != "auto":
        return fmt
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        fd = 2
    return "journal" if journal_stream_matches(environ.get("JOURNAL_STREAM"), fd) else "text"


def env_secrets(environ: Mapping[str, str]) -> list[str]:
    """Values of environment variables that hold credentials, by naming convention.

    ``APCA_*`` URLs (``APCA_API_BASE_URL``) are addresses, not credentials, and stay visible.
    """
    found = []
    for name, value in environ.items():
        by_suffix = name.endswith(SECRET_ENV_SUFFIXES)
        by_prefix = name.startswith(SECRET_ENV_PREFIX) and not name.endswith("_URL")
        if (by_suffix or by_prefix) and len(value) >= MIN_SECRET_LEN:
            found.append(value)
    return found


# --- the setup --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimit:
    """How many identical warnings pass per window."""

    window_s: float = 60.0
    burst: int = 5


def logging_config(
    fmt: str,
    level: str | int = "INFO",
    stream: TextIO | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    journal_socket: str = JOURNAL_SOCKET,
    secrets: Iterable[str] = (),
    rate_limit: RateLimit = RateLimit(),
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """The ``dictConfig`` dict of the one setup; ``fmt`` may be ``auto``."""
    stream = sys.stderr if stream is None else stream
    environ = os.environ if environ is None else environ
    chosen = resolve_format(fmt, environ, stream)
    formatters: dict[str, Any] = {}
    if chosen == "journal":
        handler = {"()": JournalHandler, "socket_path": journal_socket, "fallback": stream}
    else:
        colour = _is_tty(stream) and not environ.get("NO_COLOR")
        formatters["magellan"] = (
            {"()": JsonFormatter} if chosen == "json" else {"()": TextFormatter, "colour": colour}
        )
        handler = {"()": logging.StreamHandler, "stream": stream, "formatter": "magellan"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": formatters,
        "filters": {
            # Rate limiting keys on the message template, so it runs before redaction
            # replaces the template with the formatted text.
            "rate_limit": {
                "()": WarningRateLimiter,
                "window_s": rate_limit.window_s,
                "burst": rate_limit.burst,
                "clock": clock,
            },
            "redact": {"()": SecretRedactor, "secrets": [*env_secrets(environ), *secrets]},
        },
        "handlers": {"magellan": {**handler, "filters": ["rate_limit", "redact"]}},
        "loggers": {name: {"level": lvl} for name, lvl in QUIET_LOGGERS.items()},
        "root": {"level": level, "handlers": ["magellan"]},
    }


def _is_tty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _installed_redactors() -> list[SecretRedactor]:
    return [
        f
        for handler in logging.getLogger().handlers
        for f in handler.filters
        if isinstance(f, SecretRedactor)
    ]


def configure_logging(
    fmt: str = "auto",
    level: str | int = "INFO",
    stream: TextIO | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    journal_socket: str = JOURNAL_SOCKET,
    rate_limit: RateLimit = RateLimit(),
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Apply the one setup to the root logger (replacing, never adding to, the last one);
    secrets registered so far carry over."""
    carried = [value for redactor in _installed_redactors() for value in redactor.secrets]
    logging.config.dictConfig(
        logging_config(
            fmt,
            level,
            stream,
            environ=environ,
            journal_socket=journal_socket,
            secrets=carried,
            rate_limit=rate_limit,
            clock=clock,
        )
    )


def register_secret(value: str) -> None:
    """Redact ``value`` from every record from now on (call after ``configure_logging``)."""
    for redactor in _installed_redactors():
        redactor.add(value)
