"""The lane scheduler on its own (no orders, no broker): order per key, keys side by side,
a failure never stops a lane, a superseded item is skipped, one ``finished`` per item."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from magellan_daemon.execution.router.lanes import Lanes, LaneStats, Ticket


@dataclass
class Recorder:
    """A handler that records what the lanes ask of it. Items are strings: ``fail`` raises,
    ``wait`` waits for ``gate``, ``stop<n>`` is superseded by a following ``stop<m>``."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)
    calls: list[tuple[str, str]] = field(default_factory=list)

    def supersedes(self, later: str, earlier: str) -> bool:
        return earlier.startswith("stop") and later.startswith("stop")

    async def run(self, ticket: Ticket[str]) -> object:
        self.calls.append(("run", ticket.item))
        if ticket.item == "wait":
            await self.gate.wait()
        if ticket.item == "fail":
            raise RuntimeError("boom")
        return ticket.item.upper()

    def failed(self, ticket: Ticket[str], exc: Exception) -> None:
        self.calls.append(("failed", ticket.item))

    def skipped(self, ticket: Ticket[str]) -> None:
        self.calls.append(("skipped", ticket.item))

    def finished(self, ticket: Ticket[str]) -> None:
        assert ticket.claim_report()  # once per item
        self.calls.append(("finished", ticket.item))


async def test_a_lane_runs_its_items_in_order_and_a_failure_does_not_stop_it() -> None:
    # Arrange
    handler, stats = Recorder(), LaneStats()
    lanes = Lanes(handler, stats)
    # Act
    futures = [lanes.add(("main", "AAA"), item) for item in ("a", "fail", "b")]
    results = await asyncio.gather(*futures)
    # Assert
    assert results == ["A", None, "B"]
    assert handler.calls == [
        ("run", "a"),
        ("finished", "a"),
        ("run", "fail"),
        ("failed", "fail"),
        ("finished", "fail"),
        ("run", "b"),
        ("finished", "b"),
    ]
    assert stats == LaneStats(failed=1, in_flight=0)
    assert not lanes.busy()


async def test_a_stop_superseded_by_the_next_item_is_skipped_and_still_finished() -> None:
    handler = Recorder()
    lanes = Lanes(handler, LaneStats())
    futures = [lanes.add(("main", "AAA"), item) for item in ("stop1", "stop2", "sell")]
    assert await asyncio.gather(*futures) == [None, "STOP2", "SELL"]
    assert handler.calls[:3] == [("skipped", "stop1"), ("finished", "stop1"), ("run", "stop2")]


async def test_keys_run_side_by_side_and_items_lists_the_running_then_the_queued() -> None:
    handler = Recorder()
    lanes = Lanes(handler, LaneStats())
    waiting = lanes.add(("main", "AAA"), "wait")
    queued = lanes.add(("main", "AAA"), "after")
    other = lanes.add(("main", "BBB"), "b")
    assert await other == "B"  # not held up by AAA's lane
    assert list(lanes.items(("main", "AAA"))) == ["wait", "after"]
    assert list(lanes.items(("main", "CCC"))) == []
    assert lanes.busy() and not await lanes.drain(0.05)
    handler.gate.set()
    assert await lanes.drain(5)
    assert (await waiting, await queued) == ("WAIT", "AFTER")


async def test_cancelled_lanes_complete_what_was_queued_with_none() -> None:
    handler = Recorder()
    lanes = Lanes(handler, LaneStats())
    lanes.add(("main", "AAA"), "wait")
    queued = lanes.add(("main", "AAA"), "never")
    await asyncio.sleep(0)  # the lane takes its first item
    await lanes.cancel()
    assert await queued is None
    assert ("run", "never") not in handler.calls
