"""sd_notify client against real datagram sockets the tests bind (path and abstract)."""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from magellan_daemon.observability import sdnotify

WATCHDOG_USEC = 200_000  # 200 ms: pings every 100 ms


def _drain(sock: socket.socket) -> list[bytes]:
    """Every datagram waiting on ``sock`` (non-blocking)."""
    found = []
    while True:
        try:
            found.append(sock.recv(4096))
        except BlockingIOError:
            return found


@pytest.fixture
def path_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A datagram socket at a filesystem path, named in NOTIFY_SOCKET."""
    address = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(address))
        sock.setblocking(False)
        monkeypatch.setenv("NOTIFY_SOCKET", str(address))
        monkeypatch.delenv("WATCHDOG_USEC", raising=False)
        monkeypatch.delenv("WATCHDOG_PID", raising=False)
        yield sock


@pytest.fixture
def abstract_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A datagram socket in the abstract namespace, named ``@...`` in NOTIFY_SOCKET."""
    name = f"magellan-test-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.setblocking(False)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        yield sock


def test_lifecycle_messages_arrive_on_a_path_socket(path_socket: socket.socket) -> None:
    assert sdnotify.ready("paper, 3 strategies, 0 open positions")
    assert sdnotify.status("2 open positions,\nnext job: close at 16:10 ET")
    assert sdnotify.watchdog()
    assert sdnotify.stopping("draining 1 in-flight order")
    assert _drain(path_socket) == [
        b"READY=1\nSTATUS=paper, 3 strategies, 0 open positions",
        b"STATUS=2 open positions, next job: close at 16:10 ET",  # newline folded
        b"WATCHDOG=1",
        b"STOPPING=1\nSTATUS=draining 1 in-flight order",
    ]


def test_bare_ready_and_stopping(path_socket: socket.socket) -> None:
    assert sdnotify.ready()
    assert sdnotify.stopping()
    assert _drain(path_socket) == [b"READY=1", b"STOPPING=1"]


def test_abstract_namespace_socket(abstract_socket: socket.socket) -> None:
    assert sdnotify.ready()
    assert sdnotify.status("abstract ok")
    assert _drain(abstract_socket) == [b"READY=1", b"STATUS=abstract ok"]


def test_no_notify_socket_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", str(WATCHDOG_USEC))
    assert not sdnotify.ready()
    assert not sdnotify.status("x")
    assert not sdnotify.stopping()
    assert not sdnotify.watchdog()
    assert sdnotify.watchdog_interval() is None


def test_unreachable_socket_is_logged_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens.sock"))
    assert not sdnotify.ready()
    assert "sd_notify to" in caplog.text
    monkeypatch.setenv("NOTIFY_SOCKET", "vsock:2:1234")
    assert not sdnotify.ready()


def test_watchdog_interval_is_half_of_watchdog_usec(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "30000000"}
    assert sdnotify.watchdog_interval(env) == 15.0
    assert sdnotify.watchdog_interval({**env, "WATCHDOG_PID": str(os.getpid())}) == 15.0
    # Inherited from a parent whose watchdog it is: not ours.
    assert sdnotify.watchdog_interval({**env, "WATCHDOG_PID": str(os.getpid() + 1)}) is None
    assert sdnotify.watchdog_interval({**env, "WATCHDOG_USEC": "0"}) is None
    assert sdnotify.watchdog_interval({**env, "WATCHDOG_USEC": "soon"}) is None
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "30000000"}) is None


async def test_watchdog_task_returns_at_once_without_a_watchdog(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    await asyncio.wait_for(sdnotify.watchdog_task(), timeout=1)


async def test_watchdog_pings_at_half_period_and_stop_while_the_loop_is_blocked(
    path_socket: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Wall-clock test by nature (systemd's deadline is wall time): ~1.1 s, bounded."""
    monkeypatch.setenv("WATCHDOG_USEC", str(WATCHDOG_USEC))
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    interval = WATCHDOG_USEC / 1_000_000 / 2
    loop = asyncio.get_running_loop()
    arrivals: list[float] = []
    loop.add_reader(
        path_socket.fileno(),
        lambda: arrivals.extend(loop.time() for d in _drain(path_socket) if d == b"WATCHDOG=1"),
    )
    task = asyncio.create_task(sdnotify.watchdog_task())
    try:
        await asyncio.sleep(0.45)
        healthy = list(arrivals)
        time.sleep(0.6)  # the event loop is blocked: 3 watchdog periods, no pings
        blocked_until = loop.time()
        await asyncio.sleep(0.35)
    finally:
        task.cancel()
        loop.remove_reader(path_socket.fileno())
    # Healthy loop: a ping at once, then every 100 ms (5 in 450 ms; slack for a loaded CI).
    assert 3 <= len(healthy) <= 6, healthy
    gaps = [b - a for a, b in itertools.pairwise(healthy)]
    assert all(0.5 * interval <= g <= 2.5 * interval for g in gaps), gaps
    # Blocked loop: the longest gap spans the whole block, longer than WATCHDOG_USEC, which is
    # what makes systemd kill and restart the process.
    all_gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert max(all_gaps) >= 0.55 > WATCHDOG_USEC / 1_000_000, all_gaps
    # Pings resume once the loop is free again.
    assert any(t > blocked_until for t in arrivals), (arrivals, blocked_until)


async def test_watchdog_task_rejects_a_non_positive_interval() -> None:
    with pytest.raises(ValueError, match="positive"):
        await sdnotify.watchdog_task(0)


def test_a_receiver_that_stops_reading_never_blocks_the_sender(tmp_path) -> None:
    """systemd always reads; a stuck reader must cost dropped pings, not a blocked loop."""
    path = tmp_path / "stuck.sock"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(path))
    try:
        results = [
            sdnotify.notify("WATCHDOG=1", environ={"NOTIFY_SOCKET": str(path)}) for _ in range(500)
        ]
    finally:
        receiver.close()
    assert results[0] is True
    assert results[-1] is False  # the queue filled up: dropped, not blocked
