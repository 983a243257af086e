"""Retries of broker calls that may fail for a moment (429, 5xx, timeouts), with tenacity.

Jittered exponential backoff on operational time (``clock.pause``: short in market time on a
fast virtual clock, still bounded on a frozen one), each retry logged at WARNING, the last
error raised when the attempts are used up. Anything but ``BrokerRetryable`` is raised at
once (a refusal will not change by asking again; ``BrokerFatal`` must stop trading).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    before_sleep_log,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from magellan_core.clock import Clock, pause
from magellan_daemon.errors import BrokerRetryable

log = logging.getLogger(__name__)
T = TypeVar("T")


async def retried(
    clock: Clock,
    call: Callable[[], Awaitable[T]],
    *,
    attempts: int,
    first_wait: float,
    max_wait: float,
) -> T:
    """``await call()``, tried up to ``attempts`` times on retryable broker errors."""
    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type(BrokerRetryable),
        stop=stop_after_attempt(attempts),
        wait=wait_exponential_jitter(multiplier=first_wait, max=max_wait),
        sleep=lambda seconds: pause(clock, seconds),
        before_sleep=before_sleep_log(log, logging.WARNING),
        reraise=True,
    ):
        with attempt:
            return await call()
    raise AssertionError("unreachable: tenacity re-raises the last error")
