"""The one clock of a Magellan process (daemon and simulator alike).

Outside this module nothing reads the time or sleeps for business timing: every component
takes a ``Clock`` and asks it. Two implementations:

- ``WallClock``: real UTC time (paper and live trading).
- ``VirtualClock``: an affine map from wall time to virtual time,
  ``virtual = anchor_virtual + speed * (wall - anchor_wall)``. ``speed`` 0 freezes it, and
  tests then move it with ``advance``/``set``. Because the map is only three numbers, a
  second process (the daemon next to a separately started ``magellan sim``) can rebuild the
  same clock from ``GET /sim/clock`` and both run on one virtual time.

Virtual time never goes backwards: ``set`` refuses an earlier instant. Every re-anchoring
(``set``, ``advance``, ``set_speed``) wakes the sleepers so they recompute their deadline,
and calls the registered listeners (the scheduler uses one to recompute its wall-time
triggers after a jump).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """What every component needs from time."""

    def now(self) -> datetime:
        """Current time, timezone-aware UTC."""
        ...

    async def sleep_until(self, when: datetime) -> None:
        """Return once ``now() >= when``."""
        ...

    def to_wall(self, when: datetime) -> datetime | None:
        """Wall-clock instant (UTC) at which ``when`` will be reached; None if it never will
        by itself (a frozen virtual clock)."""
        ...


def _utc(dt: datetime) -> datetime:
    if dt.tzinfo is None:
        raise ValueError(f"naive datetime {dt!r}: Magellan's clock works in aware UTC only")
    return dt.astimezone(UTC)


class WallClock:
    """Real time. ``sleep_until`` sleeps in slices so a long sleep does not drift."""

    def now(self) -> datetime:
        """Current UTC time."""
        return datetime.now(UTC)

    async def sleep_until(self, when: datetime) -> None:
        """Sleep until the wall clock reaches ``when``."""
        when = _utc(when)
        while True:
            remaining = (when - self.now()).total_seconds()
            if remaining <= 0:
                return
            await asyncio.sleep(min(remaining, 60.0))

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of this clock's time."""
        await asyncio.sleep(max(0.0, seconds))

    def to_wall(self, when: datetime) -> datetime | None:
        """Wall time equals clock time."""
        return _utc(when)

    def __repr__(self) -> str:
        return "WallClock()"


class VirtualClock:
    """Virtual time driven by wall time at ``speed`` (0 = stepped by hand)."""

    def __init__(
        self,
        start: datetime,
        speed: float = 0.0,
        *,
        wall: Callable[[], float] = time.time,
        anchor_wall: float | None = None,
    ) -> None:
        if speed < 0:
            raise ValueError(f"clock speed must be >= 0, got {speed}")
        self._wall = wall
        self._anchor_virtual = _utc(start)
        self._anchor_wall = wall() if anchor_wall is None else anchor_wall
        self._speed = float(speed)
        self._changed: asyncio.Event | None = None
        self._listeners: list[Callable[[], None]] = []

    # -- reading -------------------------------------------------------------------------

    @property
    def speed(self) -> float:
        """Virtual seconds per wall second."""
        return self._speed

    def now(self) -> datetime:
        """Current virtual time (UTC)."""
        if self._speed == 0:
            return self._anchor_virtual
        elapsed = (self._wall() - self._anchor_wall) * self._speed
        return self._anchor_virtual + timedelta(seconds=elapsed)

    def to_wall(self, when: datetime) -> datetime | None:
        """Wall instant when virtual ``when`` is reached (now if already past)."""
        when = _utc(when)
        if when <= self.now():
            return datetime.fromtimestamp(self._wall(), UTC)
        if self._speed == 0:
            return None
        wall_ts = self._anchor_wall + (when - self._anchor_virtual).total_seconds() / self._speed
        return datetime.fromtimestamp(wall_ts, UTC)

    def anchor(self) -> dict[str, float | str]:
        """The affine map as plain values, for ``GET /sim/clock`` and for another process."""
        return {
            "anchor_virtual": self._anchor_virtual.isoformat(),
            "anchor_wall": self._anchor_wall,
            "speed": self._speed,
        }

    @classmethod
    def from_anchor(cls, anchor: dict[str, float | str]) -> VirtualClock:
        """Rebuild the clock another process published with ``anchor()``."""
        start = datetime.fromisoformat(str(anchor["anchor_virtual"]))
        return cls(start, float(anchor["speed"]), anchor_wall=float(anchor["anchor_wall"]))

    # -- waiting -------------------------------------------------------------------------

    async def sleep_until(self, when: datetime) -> None:
        """Return once virtual time reaches ``when``; re-anchoring wakes and re-checks."""
        when = _utc(when)
        while True:
            now = self.now()
            if now >= when:
                return
            event = self._event()
            if self._speed == 0:
                await event.wait()
                continue
            wall_seconds = (when - now).total_seconds() / self._speed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout=max(wall_seconds, 0.0005))

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of virtual time."""
        await self.sleep_until(self.now() + timedelta(seconds=seconds))

    # -- moving --------------------------------------------------------------------------

    def set(self, when: datetime) -> None:
        """Jump to ``when`` (never backwards), keeping the speed."""
        when = _utc(when)
        now = self.now()
        if when < now:
            raise ValueError(f"virtual time cannot go back from {now} to {when}")
        self._reanchor(when, self._speed)

    def advance(self, delta: timedelta | float) -> None:
        """Move forward by ``delta`` (a timedelta or seconds)."""
        seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
        if seconds < 0:
            raise ValueError("virtual time cannot go back")
        self._reanchor(self.now() + timedelta(seconds=seconds), self._speed)

    def set_speed(self, speed: float) -> None:
        """Change the speed from now on (0 freezes)."""
        if speed < 0:
            raise ValueError(f"clock speed must be >= 0, got {speed}")
        self._reanchor(self.now(), float(speed))

    def adopt(self, anchor: dict[str, float | str]) -> bool:
        """Follow another process's clock (its ``anchor()``); True when it changed."""
        virtual = _utc(datetime.fromisoformat(str(anchor["anchor_virtual"])))
        wall, speed = float(anchor["anchor_wall"]), float(anchor["speed"])
        if (virtual, wall, speed) == (self._anchor_virtual, self._anchor_wall, self._speed):
            return False
        self._anchor_virtual, self._anchor_wall, self._speed = virtual, wall, speed
        self._notify()
        return True

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` after every re-anchoring."""
        self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[], None]) -> None:
        """Stop calling ``callback``."""
        if callback in self._listeners:
            self._listeners.remove(callback)

    def _reanchor(self, virtual: datetime, speed: float) -> None:
        self._anchor_virtual = virtual
        self._anchor_wall = self._wall()
        self._speed = speed
        self._notify()

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None
        for callback in list(self._listeners):
            callback()

    def _event(self) -> asyncio.Event:
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    def __repr__(self) -> str:
        return f"VirtualClock(now={self.now().isoformat()}, speed={self._speed})"


class Deadline:
    """Operational timing (retries, waits for the broker): expires after ``seconds`` of the
    clock's time or of wall time, whichever comes first. At 1x both agree; on a fast virtual
    clock the virtual bound keeps a wait short in market time; on a frozen one the wall bound
    still ends it."""

    def __init__(self, clock: Clock, seconds: float) -> None:
        self._clock = clock
        self._virtual_end = clock.now() + timedelta(seconds=seconds)
        self._wall_end = time.monotonic() + seconds

    def remaining(self) -> float:
        """Wall seconds left (0 when expired)."""
        wall_left = self._wall_end - time.monotonic()
        reached = self._clock.to_wall(self._virtual_end)
        if reached is not None:
            wall_left = min(wall_left, (reached - datetime.now(UTC)).total_seconds())
            if self._clock.now() >= self._virtual_end:
                return 0.0
        return max(0.0, wall_left)

    def expired(self) -> bool:
        """True once either bound has passed."""
        return self.remaining() <= 0.0


async def pause(clock: Clock, seconds: float) -> None:
    """Sleep ``seconds`` of operational time (see ``Deadline``)."""
    deadline = Deadline(clock, seconds)
    while (left := deadline.remaining()) > 0:
        await asyncio.sleep(min(left, 0.25))
