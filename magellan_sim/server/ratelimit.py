"""Alpaca's request rate limit: N requests per rolling minute of WALL time, per bucket.

Wall time on purpose: the limit protects a real server from a real client, so a simulator
running at 60x speed must not let a client send 60x the requests Alpaca would accept.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

WINDOW_SECONDS = 60.0


@dataclass(frozen=True, slots=True, kw_only=True)
class RateDecision:
    """Whether a request may proceed, and the ``X-RateLimit-*`` header values."""

    allowed: bool
    limit: int
    remaining: int
    reset_epoch: int

    def headers(self) -> dict[str, str]:
        """The three headers Alpaca documents, as strings."""
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_epoch),
        }


class RateLimiter:
    """A sliding-window counter per bucket (e.g. per API key); ``limit`` 0 disables it."""

    def __init__(self, limit: int, *, wall: Callable[[], float] = time.time) -> None:
        if limit < 0:
            raise ValueError(f"rate limit must be >= 0, got {limit}")
        self.limit = limit
        self._wall = wall
        self._hits: dict[str, deque[float]] = {}

    def check(self, bucket: str) -> RateDecision:
        """Count one request for ``bucket`` if the window has room (refused ones don't count)."""
        now = self._wall()
        if self.limit == 0:
            return RateDecision(allowed=True, limit=0, remaining=0, reset_epoch=math.ceil(now))
        hits = self._hits.setdefault(bucket, deque())
        while hits and hits[0] <= now - WINDOW_SECONDS:
            hits.popleft()
        allowed = len(hits) < self.limit
        if allowed:
            hits.append(now)
        reset = hits[0] + WINDOW_SECONDS if hits else now
        return RateDecision(
            allowed=allowed,
            limit=self.limit,
            remaining=self.limit - len(hits),
            reset_epoch=math.ceil(reset),
        )
