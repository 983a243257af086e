"""The logging setup, read back from what it writes: text and JSON from a StringIO, journal
entries from an AF_UNIX datagram socket the test binds itself."""

from __future__ import annotations

import array
import io
import logging
import os
import shutil
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from magellan_daemon.ledger.store import Ledger
from magellan_daemon.observability.journal import (
    encode_journal_entry,
    journal_field_name,
    syslog_priority,
)
from magellan_daemon.observability.logs import (
    RateLimit,
    configure_logging,
    register_secret,
    resolve_format,
)
from magellan_daemon.runtime.pending import expire_unrouted
from strategies.api.model import FixedDollars, Intent

ORDER_FIELDS = {
    "STRATEGY": "bear_trap",
    "SYMBOL": "TSLA",
    "CLIENT_ORDER_ID": "bt-20240105-TSLA-entry",
    "ORDER_ID": "9f1c-77",
    "EVENT": "fill",
}
ORDER_LINE = "filled    bear_trap    TSLA   buy  qty=10 price=241.5 cid=bt-20240105-TSLA-entry"
FAKE_SECRET = "FAKE-registered-secret-0123456789"
FAKE_ENV_SECRET = "FAKEenvSECRETabcdefghij"
log = logging.getLogger("magellan_daemon.execution.events")


class TtyStringIO(io.StringIO):
    def isatty(self) -> bool:
        return True


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def restore_root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    quiet = logging.getLogger("apscheduler")
    quiet_level = quiet.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)
    quiet.setLevel(quiet_level)


@pytest.fixture
def journal_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "journal.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2.0)
    yield sock, path
    sock.close()


def parse_entry(data: bytes) -> tuple[dict[str, bytes], set[str]]:
    """Journal native-protocol payload -> fields, and the names sent in the binary form."""
    fields: dict[str, bytes] = {}
    binary: set[str] = set()
    pos = 0
    while pos < len(data):
        end = data.index(b"\n", pos)
        line = data[pos:end]
        if b"=" in line:
            name, value = line.split(b"=", 1)
            pos = end + 1
        else:
            name = line
            (size,) = struct.unpack_from("<Q", data, end + 1)
            value = data[end + 9 : end + 9 + size]
            assert data[end + 9 + size : end + 10 + size] == b"\n"
            binary.add(name.decode())
            pos = end + 10 + size
        fields[name.decode()] = value
    return fields, binary


def receive_entry(
    sock: socket.socket, *, via_memfd: bool = False
) -> tuple[dict[str, bytes], set[str]]:
    """One entry from the socket, sent inline or (``via_memfd``) as a memfd descriptor."""
    fds = array.array("i")
    data, ancdata, _flags, _addr = sock.recvmsg(1 << 20, socket.CMSG_SPACE(fds.itemsize))
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
    assert bool(fds) == via_memfd
    if fds:
        assert data == b""
        with os.fdopen(fds[0], "rb") as memfd:
            memfd.seek(0)
            data = memfd.read()
    return parse_entry(data)


def log_order_and_failure() -> None:
    log.info(ORDER_LINE, extra={"fields": ORDER_FIELDS})
    try:
        raise ConnectionError(f"broker said: bad key {FAKE_SECRET} / {FAKE_ENV_SECRET}")
    except ConnectionError:
        log.exception(
            "submit of %s failed", "bt-20240105-TSLA-entry", extra={"fields": ORDER_FIELDS}
        )


# --- text ---------------------------------------------------------------------------------


def test_text_is_one_line_per_record_with_unseen_fields() -> None:
    out = io.StringIO()
    configure_logging("text", stream=out, environ={})
    log.info(ORDER_LINE, extra={"fields": ORDER_FIELDS})
    logging.getLogger("magellan").warning("plain %s", "line")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert ORDER_LINE in lines[0]
    # strategy, symbol and cid are already words of the message: not repeated
    assert lines[0].endswith("  order_id=9f1c-77 event=fill")
    assert " INFO    events     filled" in lines[0]
    assert "WARNING magellan   plain line" in lines[1]
    assert "\x1b[" not in out.getvalue()


def test_text_colours_only_a_tty_without_no_color() -> None:
    tty = TtyStringIO()
    configure_logging("text", stream=tty, environ={})
    log.error("red")
    assert "\x1b[31mERROR  \x1b[0m" in tty.getvalue()
    muted = TtyStringIO()
    configure_logging("text", stream=muted, environ={"NO_COLOR": "1"})
    log.error("plain")
    assert "\x1b[" not in muted.getvalue()


# --- json ---------------------------------------------------------------------------------


def test_json_lines_carry_fields_and_exception() -> None:
    out = io.StringIO()
    configure_logging("json", stream=out, environ={})
    log_order_and_failure()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (orjson.loads(line) for line in lines)
    assert first["msg"] == ORDER_LINE
    assert first["level"] == "INFO"
    assert first["logger"] == "magellan_daemon.execution.events"
    assert first["strategy"] == "bear_trap"
    assert first["client_order_id"] == "bt-20240105-TSLA-entry"
    assert first["order_id"] == "9f1c-77"
    assert first["event"] == "fill"
    assert first["ts"].endswith("+00:00")
    assert "exc" not in first
    assert second["level"] == "ERROR"
    assert "Traceback" in second["exc"]
    assert "ConnectionError" in second["exc"]


# --- journal ------------------------------------------------------------------------------


def test_journal_entries_carry_priority_and_fields(
    journal_socket: tuple[socket.socket, str],
) -> None:
    sock, path = journal_socket
    configure_logging("journal", stream=io.StringIO(), environ={}, journal_socket=path)
    log_order_and_failure()
    info, info_binary = receive_entry(sock)
    assert info["MESSAGE"] == ORDER_LINE.encode()
    assert info["PRIORITY"] == b"6"
    assert info["STRATEGY"] == b"bear_trap"
    assert info["SYMBOL"] == b"TSLA"
    assert info["CLIENT_ORDER_ID"] == b"bt-20240105-TSLA-entry"
    assert info["ORDER_ID"] == b"9f1c-77"
    assert info["EVENT"] == b"fill"
    assert info["SYSLOG_IDENTIFIER"] == b"magellan"
    assert info["LOGGER"] == b"magellan_daemon.execution.events"
    assert info["CODE_FILE"].endswith(b"test_logs.py")
    assert info["CODE_FUNC"] == b"log_order_and_failure"
    assert int(info["CODE_LINE"]) > 0
    assert info_binary == set()

    error, error_binary = receive_entry(sock)
    assert error["PRIORITY"] == b"3"
    assert error["STRATEGY"] == b"bear_trap"
    assert error["MESSAGE"].startswith(b"submit of bt-20240105-TSLA-entry failed\nTraceback")
    assert b"ConnectionError" in error["EXCEPTION"]
    assert {"MESSAGE", "EXCEPTION"} <= error_binary


def test_journal_entry_too_big_for_a_datagram_goes_through_a_memfd(
    journal_socket: tuple[socket.socket, str],
) -> None:
    sock, path = journal_socket
    configure_logging("journal", stream=io.StringIO(), environ={}, journal_socket=path)
    huge = "x" * (1 << 19)
    log.warning("big: %s", huge, extra={"fields": ORDER_FIELDS})
    entry, _ = receive_entry(sock, via_memfd=True)
    assert entry["MESSAGE"] == f"big: {huge}".encode()
    assert entry["PRIORITY"] == b"4"
    assert entry["STRATEGY"] == b"bear_trap"


def test_journal_unreachable_falls_back_to_text(tmp_path: Path) -> None:
    out = io.StringIO()
    missing = str(tmp_path / "no-journal.sock")
    configure_logging("journal", stream=out, environ={}, journal_socket=missing)
    log.info(ORDER_LINE, extra={"fields": ORDER_FIELDS})
    log.info("second")
    lines = out.getvalue().splitlines()
    assert "journal socket" in lines[0] and missing in lines[0]
    assert ORDER_LINE in lines[1] and "order_id=9f1c-77" in lines[1]
    assert lines[2].endswith("second")


def test_auto_picks_journal_only_when_journal_stream_names_the_stream(tmp_path: Path) -> None:
    with open(tmp_path / "stderr", "w") as stream:
        stat = os.fstat(stream.fileno())
        matching = {"JOURNAL_STREAM": f"{stat.st_dev}:{stat.st_ino}"}
        assert resolve_format("auto", matching, stream) == "journal"
        other = {"JOURNAL_STREAM": f"{stat.st_dev}:{stat.st_ino + 1}"}
        assert resolve_format("auto", other, stream) == "text"
        assert resolve_format("auto", {"JOURNAL_STREAM": "junk"}, stream) == "text"
        assert resolve_format("auto", {}, stream) == "text"
        assert resolve_format("json", matching, stream) == "json"
    with pytest.raises(ValueError, match="unknown log format"):
        resolve_format("xml", {}, io.StringIO())


def test_journal_encoding_and_names() -> None:
    payload = encode_journal_entry([("A", "one"), ("B", "two\nlines"), ("C", 3)])
    fields, binary = parse_entry(payload)
    assert fields == {"A": b"one", "B": b"two\nlines", "C": b"3"}
    assert binary == {"B"}
    assert journal_field_name("client_order_id") == "CLIENT_ORDER_ID"
    assert journal_field_name("_PID") == "PID"
    assert journal_field_name("9lives-x") == "F_9LIVES_X"
    assert len(journal_field_name("a" * 100)) == 64
    levels = [logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO, logging.DEBUG]
    assert [syslog_priority(level) for level in levels] == [2, 3, 4, 6, 7]


# --- rate limiting ------------------------------------------------------------------------


def test_repeated_warnings_are_rate_limited_with_a_summary() -> None:
    out = io.StringIO()
    clock = FakeClock()
    configure_logging(
        "text", stream=out, environ={}, rate_limit=RateLimit(window_s=60, burst=5), clock=clock
    )
    for attempt in range(20):
        log.warning("stream dropped (attempt %d)", attempt)
        log.info("info is never limited %d", attempt)
    log.warning("a different warning")
    lines = out.getvalue().splitlines()
    assert sum("stream dropped" in line for line in lines) == 5
    assert sum("info is never limited" in line for line in lines) == 20
    assert "suppressed" not in out.getvalue()

    clock.now += 61
    log.info("after the window")
    tail = out.getvalue().splitlines()[len(lines) :]
    assert len(tail) == 2
    assert "WARNING" in tail[0]
    assert "suppressed 15 similar messages in 60s: stream dropped (attempt %d)" in tail[0]
    assert tail[1].endswith("after the window")
    log.warning("stream dropped (attempt %d)", 99)
    assert out.getvalue().splitlines()[-1].endswith("stream dropped (attempt 99)")


def test_warnings_about_different_orders_are_never_grouped_as_similar() -> None:
    """A burst of refused exits or stops (one template, many orders) is seen whole; the same
    order's repeats are still limited."""
    out = io.StringIO()
    configure_logging(
        "text",
        stream=out,
        environ={},
        rate_limit=RateLimit(window_s=60, burst=5),
        clock=FakeClock(),
    )
    for n in range(12):
        log.warning("%s: %s", f"rejected cid=mg-{n}", "rejected", extra=_order_fields(f"mg-{n}"))
    for _ in range(12):
        log.warning("%s: %s", "rejected cid=mg-same", "rejected", extra=_order_fields("mg-same"))
    text = out.getvalue()
    assert all(f"cid=mg-{n}:" in text for n in range(12))
    assert text.count("cid=mg-same:") == 5


def test_every_intent_expired_at_a_restart_is_logged_however_many(tmp_path: Path) -> None:
    """Each intent's one answer (here: expired, never routed) is seen: a restart after a
    busy minute expires more intents than a warning's burst, and none is cut."""
    out = io.StringIO()
    configure_logging(
        "text",
        stream=out,
        environ={},
        rate_limit=RateLimit(window_s=60, burst=5),
        clock=FakeClock(),
    )
    ledger = Ledger.open(tmp_path / "ledger.sqlite")
    now = datetime(2024, 12, 11, 19, 27, tzinfo=UTC)
    symbols = ["AMC", "GME", "MARA", "MULN", "PLUG", "RIOT", "TLRY", "WKHS"]
    for symbol in symbols:
        intent = Intent(
            strategy="bear_trap",
            symbol=symbol,
            action="buy",
            leg="entry",
            signal_time=now,
            reason="test",
            sizing=FixedDollars(dollars=1000.0, price=10.0),
        )
        ledger.add_intent(intent, now=now)
    expire_unrouted(ledger, now)
    text = out.getvalue()
    assert all(f"bear_trap    {s} " in text for s in symbols), text
    assert "suppressed" not in text
    ledger.close()


def _order_fields(cid: str) -> dict[str, object]:
    return {"fields": {"CLIENT_ORDER_ID": cid, "EVENT": "rejected"}}


# --- secrets ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["text", "json", "journal"])
def test_secrets_are_redacted_in_every_format(
    fmt: str, journal_socket: tuple[socket.socket, str]
) -> None:
    sock, path = journal_socket
    out = io.StringIO()
    environ = {"APCA_API_SECRET_KEY": FAKE_ENV_SECRET, "APCA_API_BASE_URL": "https://paper.example"}
    configure_logging(fmt, stream=out, environ=environ, journal_socket=path)
    register_secret(FAKE_SECRET)
    fields = {**ORDER_FIELDS, "ORDER_ID": f"id-{FAKE_SECRET}"}
    log.warning("key %s base %s", FAKE_SECRET, "https://paper.example", extra={"fields": fields})
    log_order_and_failure()
    if fmt == "journal":
        written = b"".join(sock.recv(1 << 20) for _ in range(3)).decode()
    else:
        written = out.getvalue()
    assert FAKE_SECRET not in written
    assert FAKE_ENV_SECRET not in written
    assert written.count("[REDACTED]") >= 4
    assert "https://paper.example" in written
    assert "ConnectionError: broker said: bad key [REDACTED] / [REDACTED]" in written


def test_configuring_twice_replaces_the_handler_and_keeps_secrets() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("text", stream=first, environ={})
    register_secret(FAKE_SECRET)
    configure_logging("json", stream=second, environ={})
    assert len(logging.getLogger().handlers) == 1
    log.info("once %s", FAKE_SECRET)
    assert first.getvalue() == ""
    (line,) = second.getvalue().splitlines()
    assert orjson.loads(line)["msg"] == "once [REDACTED]"
    assert logging.getLogger("apscheduler").level == logging.WARNING


# --- a real journald, where the machine has one -------------------------------------------

JOURNALD = Path("/lib/systemd/systemd-journald")
# A private mount namespace with tmpfs over the journal's directories, so the journald started
# here neither sees nor touches the host's journal.
REAL_JOURNAL_SCRIPT = r"""
mkdir -p /run/systemd /run/log
mount -t tmpfs tmpfs /run/systemd
mount -t tmpfs tmpfs /run/log
if [ -d /var/log/journal ]; then mount -t tmpfs tmpfs /var/log/journal; fi
mkdir -p /run/systemd/journal
"$JOURNALD" >/dev/null 2>&1 &
trap 'kill $!' EXIT
for _ in $(seq 100); do [ -S /run/systemd/journal/socket ] && break; sleep 0.05; done
"$PYTHON" -c "$WRITER"
journalctl --sync 2>/dev/null || sleep 0.5
journalctl --directory=/run/log/journal --all -o json SYSLOG_IDENTIFIER=magellan
"""
REAL_JOURNAL_WRITER = """
import io, logging
from magellan_daemon.observability.logs import configure_logging
configure_logging("journal", stream=io.StringIO(), environ={})
log = logging.getLogger("magellan_daemon.execution.events")
fields = {"STRATEGY": "bear_trap", "CLIENT_ORDER_ID": "bt-real-1", "EVENT": "fill"}
log.info("filled bear_trap TSLA qty=1", extra={"fields": fields})
try:
    raise KeyError("x")
except KeyError:
    log.exception("failed", extra={"fields": fields})
log.warning("big %s", "y" * 300000, extra={"fields": fields})
"""


def test_a_real_journald_stores_the_entries_with_their_fields() -> None:
    if os.geteuid() != 0 or not JOURNALD.exists() or not shutil.which("unshare"):
        pytest.skip("needs root, unshare and systemd-journald")
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "bash", "-ec", REAL_JOURNAL_SCRIPT],
        env={
            **os.environ,
            "JOURNALD": str(JOURNALD),
            "PYTHON": sys.executable,
            "WRITER": REAL_JOURNAL_WRITER,
            "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        },
        capture_output=True,
        timeout=30,
        check=False,
    )
    if done.returncode != 0 and b"unshare" in done.stderr:
        pytest.skip(f"no private mount namespace here: {done.stderr.decode()[:200]}")
    assert done.returncode == 0, done.stderr.decode()
    entries = [orjson.loads(line) for line in done.stdout.splitlines()]
    assert [e["PRIORITY"] for e in entries] == ["6", "3", "4"]
    assert all(e["STRATEGY"] == "bear_trap" for e in entries)
    assert all(e["CLIENT_ORDER_ID"] == "bt-real-1" for e in entries)
    assert entries[0]["MESSAGE"] == "filled bear_trap TSLA qty=1"
    assert "KeyError" in entries[1]["MESSAGE"]
    assert entries[2]["MESSAGE"] == "big " + "y" * 300000
