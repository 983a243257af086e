"""The shared clock: affine virtual time, stepping, waking sleepers on a jump."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from magellan_core.clock import VirtualClock

START = datetime(2024, 11, 29, 14, 30, tzinfo=UTC)


class FakeWall:
    """A wall time the test moves; the clock's only injected seam."""

    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def test_affine_map_runs_at_speed() -> None:
    wall = FakeWall()
    clock = VirtualClock(START, speed=60, wall=wall)
    wall.t += 10
    assert clock.now() == START + timedelta(minutes=10)
    assert clock.to_wall(START + timedelta(minutes=20)) == datetime.fromtimestamp(wall.t + 10, UTC)


def test_stepped_clock_only_moves_when_told() -> None:
    wall = FakeWall()
    clock = VirtualClock(START, speed=0, wall=wall)
    wall.t += 100
    assert clock.now() == START
    clock.advance(timedelta(minutes=1))
    assert clock.now() == START + timedelta(minutes=1)
    assert clock.to_wall(START + timedelta(hours=1)) is None
    with pytest.raises(ValueError):
        clock.set(START)


def test_anchor_round_trips_to_another_process() -> None:
    wall = FakeWall()
    clock = VirtualClock(START, speed=1000, wall=wall)
    twin = VirtualClock.from_anchor(clock.anchor())
    twin._wall = wall  # same wall source, as two processes on one machine share time.time
    wall.t += 3
    assert twin.now() == clock.now()


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        VirtualClock(datetime(2024, 1, 1), speed=0)


async def test_sleepers_wake_on_advance_and_listeners_fire() -> None:
    clock = VirtualClock(START, speed=0)
    jumps: list[datetime] = []
    clock.add_listener(lambda: jumps.append(clock.now()))
    target = START + timedelta(minutes=5)
    sleeper = asyncio.create_task(clock.sleep_until(target))
    await asyncio.sleep(0)
    clock.advance(60)
    await asyncio.sleep(0)
    assert not sleeper.done()
    clock.set(target)
    await asyncio.wait_for(sleeper, 1)
    assert jumps == [START + timedelta(minutes=1), target]


async def test_sleep_at_high_speed_returns_promptly() -> None:
    clock = VirtualClock(START, speed=100_000)
    await asyncio.wait_for(clock.sleep(60), 1)
    assert clock.now() >= START + timedelta(seconds=60)
