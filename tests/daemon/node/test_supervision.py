"""A task the daemon cannot trade without is never silently gone: its end is fatal and shows
in the health check and the watchdog's view."""

from __future__ import annotations

import asyncio

from magellan_daemon.node.daemon import EXIT_FAILURE, Daemon


async def test_a_dead_critical_task_fails_health_and_stops_the_daemon(daemon: Daemon) -> None:
    daemon.metrics.last_loop_lag = 0.0
    assert daemon.alive()

    async def consumer() -> None:
        raise OSError("disk full")  # e.g. the CSV trade log could not be written

    daemon.supervisor.spawn(consumer(), name="trade-updates[main]-consumer")
    await asyncio.sleep(0.01)
    ok, reason = daemon.health()
    assert not ok and "trade-updates[main]-consumer" in reason
    assert not daemon.alive()  # the watchdog stops pinging
    assert daemon.stop_requested and daemon.exit_code == EXIT_FAILURE
    await daemon.supervisor.cancel_all()


async def test_a_task_that_returns_is_as_dead_as_one_that_crashed(daemon: Daemon) -> None:
    async def quits() -> None:
        return None

    daemon.supervisor.spawn(quits(), name="strategy-bear_trap")
    await asyncio.sleep(0.01)
    assert daemon.supervisor.dead() == ["strategy-bear_trap"]
    assert daemon.exit_code == EXIT_FAILURE


async def test_tasks_ending_during_shutdown_are_not_deaths(daemon: Daemon) -> None:
    async def forever() -> None:
        await asyncio.Event().wait()

    daemon.supervisor.spawn(forever(), name="status")
    await daemon.supervisor.cancel_all()
    assert not daemon.stop_requested and daemon.exit_code == 0
