"""The websocket faults (``Faults.trade_*``, ``drop_next_fill_events``, ``silent_*``) as
decisions the stream hub asks for, frame by frame.

Random decisions draw from a generator seeded by the fault ``seed`` (reseeded when it
changes), and a draw is made only while its rate is above 0, so switching one fault on does
not shift the sequence of another that is off. What happens to a trade-update frame on one
connection is one of ``Fate``'s values.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime
from enum import Enum
from typing import Any

from magellan_sim.exchange.faults import Faults

FILL_EVENTS = frozenset({"fill", "partial_fill"})


class Fate(Enum):
    """What becomes of one trade-update frame on one connection."""

    SEND = "send"
    TWICE = "twice"  # sent, then sent again
    HOLD = "hold"  # held back, sent after the connection's next frame
    DROP = "drop"  # lost


class StreamFaults:
    """Seeded per-frame decisions and the silent windows of one server's streams."""

    def __init__(self, faults: Faults, now: Callable[[], datetime]) -> None:
        self._faults = faults
        self._now = now
        self._seed = faults.seed
        self._rng = random.Random(self._seed)

    def reseed(self) -> None:
        """Restart the decision sequence from the current fault seed."""
        self._seed = self._faults.seed
        self._rng = random.Random(self._seed)

    def withhold_event(self, message: dict[str, Any]) -> bool:
        """Whether this trade update leaves no socket at all: one of the next
        ``drop_next_fill_events`` fill or partial_fill events (consumes one)."""
        data = message.get("data")
        event = data.get("event") if isinstance(data, dict) else None
        return event in FILL_EVENTS and self._faults.take("drop_next_fill_events")

    def fate(self, can_hold: bool) -> Fate:
        """What happens to a trade-update frame on one connection (``can_hold``: nothing is
        held back on it yet)."""
        faults = self._faults
        if self._draw(faults.trade_drop_rate):
            return Fate.DROP
        if can_hold and self._draw(faults.trade_reorder_rate):
            return Fate.HOLD
        if self._draw(faults.trade_duplicate_rate):
            return Fate.TWICE
        return Fate.SEND

    def trade_silent(self) -> bool:
        """Whether trade-update sockets must send nothing now."""
        return self._faults.silent("silent_trade_seconds", self._now())

    def data_silent(self) -> bool:
        """Whether market-data sockets must send nothing now."""
        return self._faults.silent("silent_data_seconds", self._now())

    def _draw(self, rate: float) -> bool:
        if rate <= 0:
            return False
        if self._faults.seed != self._seed:
            self.reseed()
        return self._rng.random() < rate
