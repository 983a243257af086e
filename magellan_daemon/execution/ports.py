"""What other layers call on the order path, as protocols: the runtime depends on these, not
on the concrete router, so either side can change behind them."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

from strategies.model import Intent


class IntentRouter(Protocol):
    """Where a strategy runner hands its intents (``router.OrderRouter`` in the daemon)."""

    def submit(
        self, intents: Sequence[Intent], intent_ids: Sequence[int | None] = ()
    ) -> list[asyncio.Future[object]]:
        """Queue intents (never waits); each future completes when its intent was executed
        (or not)."""
        ...

    async def execute(
        self, intents: Sequence[Intent], intent_ids: Sequence[int | None] = ()
    ) -> None:
        """``submit`` and wait until every intent was executed."""
        ...
