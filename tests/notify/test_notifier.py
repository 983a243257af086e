"""The notifier and its log handler, through the real apprise to a loopback HTTP receiver
(``json://``): the events chosen are sent, the rest are not; beyond the rate the messages
are grouped into one digest; a failed send is a WARNING and the worker goes on; no URL is
ever logged."""

from __future__ import annotations

import asyncio
import logging
import socket
from datetime import date

import pytest

from magellan_daemon.notify.bridge import NotifyHandler
from magellan_daemon.notify.notifier import Message, Notifier
from magellan_daemon.notify.service import apprise_sender
from magellan_daemon.notify.settings import NotifyConfig
from magellan_daemon.tasks import spawn
from tests.e2e.harness import wait_for
from tests.e2e.receiver import Receiver

pytestmark = pytest.mark.timeout(60)


def _notifier(url: str, **options: object) -> Notifier:
    send, services = apprise_sender([url])
    assert services == 1
    notifier = Notifier(send, services=services, **options)  # type: ignore[arg-type]
    notifier.start(lambda coro: spawn(coro, name="test-notifier"))
    return notifier


async def test_over_the_rate_messages_are_grouped_in_one_digest() -> None:
    async with Receiver() as receiver:
        notifier = _notifier(receiver.url, max_per_minute=2, window=1.0)
        for i in range(5):
            notifier.post(Message("fills", f"fill {i}", f"body {i}"))
        await wait_for(lambda: len(receiver.received) >= 3, 10, "three notifications")
        await asyncio.sleep(0.2)
        titles = [body["title"] for _, body in receiver.received]
        assert titles == ["fill 0", "fill 1", "Magellan: 3 events"]
        assert "fill 4: body 4" in receiver.received[2][1]["message"]
        # The digest waited for the window to free (1 s here, a minute by default).
        assert receiver.received[2][0] - receiver.received[0][0] >= 0.9
        await notifier.flush(2)


async def test_a_failed_send_is_a_warning_and_the_worker_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dead = f"json://127.0.0.1:{port}/hook"
    caplog.set_level(logging.DEBUG)
    notifier = _notifier(dead, max_per_minute=10)
    notifier.post(Message("fatal", "one", "first"))
    notifier.post(Message("fatal", "two", "second"))
    await wait_for(lambda: notifier.failed == 2, 30, "two failed sends")
    warnings = [r for r in caplog.records if r.name.startswith("magellan_daemon.notify")]
    assert [r.levelno for r in warnings] == [logging.WARNING, logging.WARNING]
    assert str(port) not in caplog.text  # neither the URL nor its host:port
    assert notifier._task is not None and not notifier._task.done()
    notifier._task.cancel()


async def test_the_handler_sends_the_chosen_events_from_the_log() -> None:
    config = NotifyConfig(urls_env="X", events=["refused", "halts", "fatal", "reconnects"])
    async with Receiver() as receiver:
        notifier = _notifier(receiver.url, max_per_minute=100)
        handler = NotifyHandler(notifier, config, lambda day: f"summary of {day}")
        root = logging.getLogger()
        root.addHandler(handler)
        try:
            events = logging.getLogger("magellan_daemon.execution.events")
            fields = {"STRATEGY": "bear_trap", "SYMBOL": "GME", "EVENT": "rejected"}
            events.info("filled    bear_trap GME buy qty=10 price=20", extra={"fields": fields})
            events.warning("rejected  bear_trap GME sell cid=x-ps-1: no", extra={"fields": fields})
            logging.getLogger("magellan_daemon.node.commands").warning(
                "HALT daily_trend", extra={"fields": {"STRATEGY": "daily_trend", "EVENT": "halt"}}
            )
            stream = logging.getLogger("magellan_daemon.adapters.alpaca.stream")
            for n in (2, 3, 4):
                stream.warning("trade-updates main: reconnected (connection %d)", n)
            logging.getLogger("magellan_daemon.node.daemon").info(
                "session %s closed: x", date.today()
            )
            logging.getLogger("magellan_daemon.node.daemon").critical("task x ended: exiting")
            logging.getLogger("magellan").error("startup failed, not going READY: boom")
            await wait_for(lambda: len(receiver.received) >= 5, 10, "five notifications")
            await asyncio.sleep(0.3)
        finally:
            root.removeHandler(handler)
        titles = [body["title"] for _, body in receiver.received]
        assert titles == [
            "Magellan: order refused",
            "Magellan: halt",
            "Magellan: reconnect storm",
            "Magellan: FATAL",
            "Magellan: FATAL",
        ]  # no fill, no summary: not chosen
        assert "3 stream reconnections" in receiver.received[2][1]["message"]
        await notifier.flush(2)


async def test_an_emergency_stop_is_sent_once_and_an_unprotected_position_as_refused() -> None:
    """The lines the daemon writes (node.emergency, node.commands' notice of the halt it
    wrote, the position guard's UNPROTECTED): one ``halts`` message for the emergency stop,
    not a second for the halt row it leaves, and the guard's finding as urgent ``refused``."""
    config = NotifyConfig(urls_env="X", events=["refused", "halts"])
    async with Receiver() as receiver:
        notifier = _notifier(receiver.url, max_per_minute=100)
        handler = NotifyHandler(notifier, config, lambda day: f"summary of {day}")
        root = logging.getLogger()
        root.addHandler(handler)
        try:
            logging.getLogger("magellan_daemon.node.emergency").error(
                "EMERGENCY STOP %s: %s; no new entries until `magellan resume %s`",
                "daily_trend",
                "5 losing sessions in a row",
                "daily_trend",
                extra={"fields": {"STRATEGY": "daily_trend", "EVENT": "emergency_stop"}},
            )
            logging.getLogger("magellan_daemon.node.commands").warning(
                "%s is HALTED: %s (exits keep working)",
                "daily_trend",
                "emergency stop: 5 losing sessions in a row",
                extra={"fields": {"STRATEGY": "daily_trend", "EVENT": "halt"}},
            )
            guard = {"STRATEGY": "bear_trap", "SYMBOL": "GME", "EVENT": "unprotected"}
            logging.getLogger("magellan_daemon.execution.position_guard").error(
                "UNPROTECTED bear_trap GME: 1241 shares held, 0 under a stop, 0 under exits, "
                "for 60 s: the position guard acts",
                extra={"fields": guard},
            )
            await wait_for(lambda: len(receiver.received) >= 2, 10, "two notifications")
            await asyncio.sleep(0.3)  # a third (the halt row again) would have come by now
        finally:
            root.removeHandler(handler)
        bodies = [body for _, body in receiver.received]
        assert [(b["title"], b["type"]) for b in bodies] == [
            ("Magellan: emergency stop", "failure"),
            ("Magellan: position guard", "failure"),
        ]
        assert "EMERGENCY STOP daily_trend" in bodies[0]["message"]
        assert "UNPROTECTED bear_trap GME" in bodies[1]["message"]
        await notifier.flush(2)
