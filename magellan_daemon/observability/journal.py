"""journald's native protocol, spoken by the handler itself.

Datagrams of ``KEY=value`` lines, the length-prefixed form for values with newlines, a sealed
memfd passed with SCM_RIGHTS when an entry is too large for one datagram; so its socket path can
point anywhere and no C library is needed. When the socket cannot be reached, the record is
written as text to the fallback stream instead: a record is never lost and logging never raises.
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
from collections.abc import Iterable
from typing import TextIO

from magellan_daemon.observability.log_format import TextFormatter, exception_text, record_fields

JOURNAL_SOCKET = "/run/systemd/journal/socket"
SYSLOG_IDENTIFIER = "magellan"
# Shorter values (flags like "true", "1") would shred unrelated text if redacted everywhere.
_BAD_FIELD_CHARS = re.compile(r"[^A-Z0-9_]")


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
