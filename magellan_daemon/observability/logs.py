"""The daemon's one logging setup: terminal text, orjson lines, or journald-native entries.

``logging_config`` returns a ``logging.config.dictConfig`` dict; only the CLI applies it,
through ``configure_logging``. Every format shares two handler filters: a rate limiter for
repeated warnings and a secret redactor. Order lines carry structured fields in
``extra={"fields": {...}}`` (see ``events.log_fields``); each format renders them its own way.

The journal handler speaks the journal's documented native protocol itself (datagrams of
``KEY=value`` lines, the length-prefixed form for values with newlines, a sealed memfd passed
with SCM_RIGHTS when an entry is too large for one datagram), so its socket path can point
anywhere and no C library is needed. When the socket cannot be reached, the record is written
as text to the fallback stream instead: a record is never lost and logging never raises.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import logging.config
import os
import re
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

import orjson

log = logging.getLogger(__name__)

LogFormat = Literal["auto", "text", "json", "journal"]
FORMATS: tuple[str, ...] = ("auto", "text", "json", "journal")
JOURNAL_SOCKET = "/run/systemd/journal/socket"
SYSLOG_IDENTIFIER = "magellan"
REDACTED = "[REDACTED]"
# Shorter values (flags like "true", "1") would shred unrelated text if redacted everywhere.
MIN_SECRET_LEN = 6
SECRET_ENV_SUFFIXES = ("_SECRET_KEY", "_SECRET", "_KEY_ID")
SECRET_ENV_PREFIX = "APCA_"
QUIET_LOGGERS = {"apscheduler": "WARNING"}
SUMMARY_ATTR = "rate_limit_summary"
_CORE_JSON_KEYS = frozenset({"ts", "level", "logger", "msg", "exc"})
_COLOURS = {
    logging.DEBUG: "\x1b[2m",
    logging.INFO: "\x1b[32m",
    logging.WARNING: "\x1b[33m",
    logging.ERROR: "\x1b[31m",
    logging.CRITICAL: "\x1b[1;31m",
}
_RESET = "\x1b[0m"
_TOKEN_SPLIT = re.compile(r"[\s=,;:()\[\]]+")
_BAD_FIELD_CHARS = re.compile(r"[^A-Z0-9_]")


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
        # Messages about different orders are not "similar": each refusal of an exit or a
        # protective stop must be seen, however many a burst of them brings.
        fields = getattr(record, "fields", None)
        order = fields.get("CLIENT_ORDER_ID", "") if isinstance(fields, dict) else ""
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


# --- the journal ------------------------------------------------------------------------------


def syslog_priority(levelno: int) -> int:
    """The syslog priority journald stores for a logging level."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


def journal_field_name(name: str) -> str:
    """``name`` made a valid journal field name: A-Z, 0-9 and _, not starting with _ or a
    digit (a leading _ marks fields only journald itself may set), at most 64 characters."""
    cleaned = _BAD_FIELD_CHARS.sub("_", name.upper()).lstrip("_")
    if not cleaned or cleaned[0].isdigit():
        cleaned = "F_" + cleaned
    return cleaned[:64]


def encode_journal_entry(fields: Iterable[tuple[str, object]]) -> bytes:
    """The native-protocol payload: ``KEY=value\\n``, or for a value containing a newline
    ``KEY\\n`` + its length as little-endian uint64 + the value + ``\\n``."""
    parts = []
    for name, value in fields:
        key = name.encode("ascii")
        data = value if isinstance(value, bytes) else str(value).encode("utf-8", "replace")
        if b"\n" in data:
            parts.append(key + b"\n" + struct.pack("<Q", len(data)) + data + b"\n")
        else:
            parts.append(key + b"=" + data + b"\n")
    return b"".join(parts)


class JournalHandler(logging.Handler):
    """Sends each record to journald over its native socket, with a PRIORITY and the record's
    structured fields; writes it as text to ``fallback`` when the journal cannot be reached."""

    def __init__(
        self,
        socket_path: str = JOURNAL_SOCKET,
        identifier: str = SYSLOG_IDENTIFIER,
        fallback: TextIO | None = None,
        send_timeout_s: float = 1.0,
    ) -> None:
        super().__init__()
        self.socket_path = socket_path
        self._identifier = identifier
        self._fallback = logging.StreamHandler(fallback if fallback is not None else sys.stderr)
        self._fallback.setFormatter(TextFormatter())
        self._send_timeout_s = send_timeout_s
        self._sock: socket.socket | None = None
        self._warned = False

    def entry_fields(self, record: logging.LogRecord) -> list[tuple[str, object]]:
        """The journal fields for one record, MESSAGE first."""
        message = record.getMessage()
        trace = exception_text(record)
        fields: list[tuple[str, object]] = [
            ("MESSAGE", f"{message}\n{trace}" if trace else message),
            ("PRIORITY", syslog_priority(record.levelno)),
            ("SYSLOG_IDENTIFIER", self._identifier),
            ("LOGGER", record.name),
            ("CODE_FILE", record.pathname),
            ("CODE_LINE", record.lineno),
            ("CODE_FUNC", record.funcName),
            ("THREAD_NAME", record.threadName),
        ]
        if trace:
            fields.append(("EXCEPTION", trace))
        reserved = {name for name, _ in fields}
        for key, value in record_fields(record).items():
            name = journal_field_name(key)
            if name not in reserved and value is not None:
                fields.append((name, value))
        return fields

    def emit(self, record: logging.LogRecord) -> None:
        """Send the record; on any failure write it to the fallback stream instead."""
        try:
            payload = encode_journal_entry(self.entry_fields(record))
            self._send(payload)
        except Exception as exc:
            self._fall_back(record, exc)

    def _send(self, payload: bytes) -> None:
        if self._sock is None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            # A stalled journal must not freeze the event loop for long: fall back instead.
            self._sock.settimeout(self._send_timeout_s)
        try:
            self._sock.sendto(payload, self.socket_path)
        except OSError as exc:
            if exc.errno not in (errno.EMSGSIZE, errno.ENOBUFS):
                raise
            self._send_memfd(payload)

    def _send_memfd(self, payload: bytes) -> None:
        # Too big for one datagram: journald reads the entry from a sealed memfd whose
        # descriptor arrives with an empty datagram (the protocol's large-entry path).
        fd = os.memfd_create("magellan-journal", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
            seals = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
            assert self._sock is not None
            # socket.send_fds ignores its address before Python 3.12: build the message here.
            rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", fd))]
            self._sock.sendmsg([], rights, 0, self.socket_path)
        finally:
            os.close(fd)

    def _fall_back(self, record: logging.LogRecord, exc: Exception) -> None:
        if not self._warned:
            self._warned = True
            note = logging.makeLogRecord(
                {
                    "name": __name__,
                    "levelno": logging.WARNING,
                    "levelname": "WARNING",
                    "msg": "journal socket %s unusable (%s): writing records to stderr",
                    "args": (self.socket_path, exc),
                }
            )
            self._fallback.handle(note)
        self._fallback.handle(record)

    def close(self) -> None:
        """Close the socket (a later record opens a new one)."""
        self.acquire()
        try:
            if self._sock is not None:
                self._sock.close()
                self._sock = None
        finally:
            self.release()
        self._fallback.close()
        super().close()


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
