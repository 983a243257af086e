"""A small sd_notify client: tell systemd READY, STATUS, STOPPING and WATCHDOG.

The protocol (``sd_notify(3)``): newline-separated ``KEY=VALUE`` assignments sent as one
datagram to the AF_UNIX socket named in ``$NOTIFY_SOCKET``; a leading ``@`` names a socket in
the abstract namespace (the ``@`` stands for a NUL byte). Without ``$NOTIFY_SOCKET`` (not
started by systemd, or a unit that is not ``Type=notify``) every call is a no-op, so the daemon
calls these unconditionally. A failed send is logged, never raised: systemd's own timeouts
(``TimeoutStartSec``, ``WatchdogSec``) then act, which is the behaviour we want.

Each call opens its own socket, as libsystemd does: nothing is kept between calls, and a
forked child cannot send on its parent's socket by accident.

The watchdog is pinged by :func:`watchdog_task`, a task on the daemon's event loop that sleeps
on the wall clock (``asyncio.sleep``), never on the business clock: a virtual clock may be
frozen or jump, while systemd's deadline runs in real seconds. Because the pings come from the
loop, a loop blocked for longer than ``WatchdogSec`` stops them and systemd restarts the
process.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

NOTIFY_SOCKET_ENV = "NOTIFY_SOCKET"
WATCHDOG_USEC_ENV = "WATCHDOG_USEC"
WATCHDOG_PID_ENV = "WATCHDOG_PID"
# systemd documents pinging at half of WATCHDOG_USEC, so one late ping is not yet fatal.
WATCHDOG_PING_FRACTION = 0.5


def notify(*assignments: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send ``KEY=VALUE`` assignments in one datagram; True if sent, False if no-op or failed."""
    env = os.environ if environ is None else environ
    address = env.get(NOTIFY_SOCKET_ENV)
    if not address:
        return False
    if address.startswith("@"):
        target = "\0" + address[1:]
    elif address.startswith("/"):
        target = address
    else:
        # e.g. "vsock:" addresses, used only when systemd runs inside a VM guest.
        log.warning("sd_notify: unsupported NOTIFY_SOCKET address %r", address)
        return False
    payload = "\n".join(assignments).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            # Never block the event loop: a datagram socket whose reader stopped reading
            # blocks the sender once its queue is full (net.unix.max_dgram_qlen, often 10).
            sock.setblocking(False)
            sock.sendto(payload, target)
    except BlockingIOError:
        log.warning("sd_notify to %s dropped: the receiver's queue is full", address)
        return False
    except OSError as exc:
        log.warning("sd_notify to %s failed: %s", address, exc)
        return False
    return True


def _one_line(text: str) -> str:
    # A newline would end the assignment and start a bogus one.
    return " ".join(text.split())


def ready(status_text: str | None = None) -> bool:
    """READY=1 (with an optional STATUS=): the unit becomes active."""
    if status_text is None:
        return notify("READY=1")
    return notify("READY=1", f"STATUS={_one_line(status_text)}")


def status(text: str) -> bool:
    """STATUS=<text>: the line ``systemctl status`` shows."""
    return notify(f"STATUS={_one_line(text)}")


def stopping(status_text: str | None = None) -> bool:
    """STOPPING=1 (with an optional STATUS=): the unit is deactivating, draining."""
    if status_text is None:
        return notify("STOPPING=1")
    return notify("STOPPING=1", f"STATUS={_one_line(status_text)}")


def watchdog() -> bool:
    """WATCHDOG=1: one keep-alive ping."""
    return notify("WATCHDOG=1")


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between pings (half of ``$WATCHDOG_USEC``), or None if no watchdog is asked for.

    Like ``sd_watchdog_enabled(3)``, a ``$WATCHDOG_PID`` naming another process means the
    watchdog is not ours (the variables were inherited), so None.
    """
    env = os.environ if environ is None else environ
    usec_text = env.get(WATCHDOG_USEC_ENV)
    if not usec_text or not env.get(NOTIFY_SOCKET_ENV):
        return None
    pid_text = env.get(WATCHDOG_PID_ENV)
    try:
        usec = int(usec_text)
        if pid_text and int(pid_text) != os.getpid():
            return None
    except ValueError:
        log.warning("sd_notify: ignoring malformed %s/%s", WATCHDOG_USEC_ENV, WATCHDOG_PID_ENV)
        return None
    if usec <= 0:
        return None
    return usec / 1_000_000 * WATCHDOG_PING_FRACTION


async def watchdog_task(
    clock_free_interval: float | None = None, alive: Callable[[], bool] | None = None
) -> None:
    """Ping WATCHDOG=1 every ``clock_free_interval`` wall seconds (default: from the env),
    as long as ``alive()`` says the daemon's own tasks are alive (a dead fill consumer must
    not be kept alive by a loop that still answers).

    Returns at once when no watchdog is configured; otherwise runs until cancelled. Start it
    with ``magellan_daemon.tasks.spawn`` on the daemon's loop.
    """
    interval = watchdog_interval() if clock_free_interval is None else clock_free_interval
    if interval is None:
        return
    if interval <= 0:
        raise ValueError(f"watchdog interval must be positive, got {interval}")
    log.info("systemd watchdog: pinging every %.1f s", interval)
    while True:
        if alive is None or alive():
            watchdog()
        await asyncio.sleep(interval)
