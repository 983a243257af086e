"""Assembling notifications for one daemon: the apprise URLs from the environment, the
notifier, and the log handler that feeds it."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Coroutine
from typing import Any

from magellan_daemon.notify.bridge import NotifyHandler, Summary
from magellan_daemon.notify.notifier import Message, Notifier, Send
from magellan_daemon.notify.settings import NotifyConfig
from magellan_daemon.observability.logs import SecretRedactor, register_secret

log = logging.getLogger(__name__)
_SPLIT = re.compile(r"[\s,]+")


class Notifications:
    """The notifier and its log handler, started and stopped with the daemon."""

    def __init__(self, notifier: Notifier, handler: NotifyHandler) -> None:
        self.notifier = notifier
        self.handler = handler

    def start(self, spawn: Callable[[Coroutine[Any, Any, Any]], object]) -> None:
        """Start the worker (``spawn``: the daemon's supervisor)."""
        self.notifier.start(spawn)

    def post(self, message: Message) -> None:
        """Queue one message (never blocks)."""
        self.notifier.post(message)

    async def stop(self, timeout: float = 10.0) -> None:
        """Send what is queued (bounded), then stop listening to the log."""
        await self.notifier.flush(timeout)
        logging.getLogger().removeHandler(self.handler)


def build_notifications(config: NotifyConfig | None, summary: Summary) -> Notifications | None:
    """The notifications ``[notify]`` asks for, or None (no table, or no URLs)."""
    if config is None:
        return None
    urls = [u for u in _SPLIT.split(os.environ.get(config.urls_env, "")) if u]
    if not urls:
        log.warning(
            "notifications off: environment variable %s holds no apprise URL", config.urls_env
        )
        return None
    for url in urls:
        register_secret(url)  # they carry tokens: redacted if anything ever prints one
    send, services = apprise_sender(urls)
    if services < len(urls):
        log.warning(
            "notifications: %d of the %d URLs in %s are not apprise URLs and are ignored",
            len(urls) - services,
            len(urls),
            config.urls_env,
        )
    if not services:
        return None
    notifier = Notifier(send, max_per_minute=config.max_per_minute, services=services)
    handler = NotifyHandler(notifier, config, summary)
    for existing in logging.getLogger().handlers:
        for redactor in existing.filters:
            if isinstance(redactor, SecretRedactor):
                handler.addFilter(redactor)  # the same secrets stay out of messages
    logging.getLogger().addHandler(handler)
    log.info(
        "notifications to %d service%s (%s): %s",
        services,
        "" if services == 1 else "s",
        config.urls_env,
        ", ".join(config.events),
    )
    return Notifications(notifier, handler)


def apprise_sender(urls: list[str]) -> tuple[Send, int]:
    """A blocking send through apprise (run in a thread) and how many URLs it accepted."""
    import apprise

    # apprise logs its own failures, with hosts and sometimes URLs: we log ours instead.
    quiet = logging.getLogger("apprise")
    quiet.setLevel(logging.CRITICAL + 1)
    quiet.propagate = False
    # urllib3 (under apprise's requests) logs each request line at DEBUG, with the path
    # that holds a service's token (Telegram's /bot<token>/...): never at any level here.
    logging.getLogger("urllib3").setLevel(max(logging.INFO, logging.getLogger("urllib3").level))
    client = apprise.Apprise()
    services = sum(1 for url in urls if client.add(url))

    def send(title: str, body: str, level: str) -> bool:
        return bool(client.notify(body=body, title=title, notify_type=level))

    return send, services
