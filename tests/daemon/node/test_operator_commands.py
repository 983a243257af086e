"""The operator-command loop of the daemon survives a failing command (issue 17).

One SQLite error while handling a command ended the loop: health still said OK and every
later `magellan flatten` waited for an answer that never came. Now the failing command is
answered with its error and the next one runs; a loop that keeps failing ends the task, which
the supervisor makes fatal (exit 1, systemd restarts the daemon), never silent.

Real parts: the daemon built on the repo's configs, its real ledger file and control channel;
the CLI side is a second connection to the same file, as `magellan flatten` uses. The SQLite
errors are real ones, raised by the database itself through a trigger.
"""

from __future__ import annotations

import asyncio

from magellan_daemon.ledger.control import ControlChannel
from magellan_daemon.node.daemon import EXIT_FAILURE, Daemon


def _cli(daemon: Daemon) -> ControlChannel:
    return ControlChannel(daemon.ledger.path)


async def _answered(cli: ControlChannel, command_id: int) -> None:
    async with asyncio.timeout(10):
        while not cli.get(command_id).finished:
            await asyncio.sleep(0.01)


async def test_a_command_whose_handling_raises_is_answered_and_the_next_one_runs(
    daemon: Daemon,
) -> None:
    cli = _cli(daemon)
    # The database refuses to mark command 1 as started (as a full disk or a broken
    # file would): a real sqlite3 error inside the handling of that command.
    cli._conn.execute(
        "CREATE TRIGGER refuse_start BEFORE UPDATE OF status ON control_commands "
        "WHEN NEW.id = 1 AND NEW.status = 'running' "
        "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
    )
    daemon.commands.poll_seconds = 0.01
    daemon.supervisor.spawn(daemon.commands.poll_forever(), name="control")
    first = cli.submit("flatten", None, {})
    await _answered(cli, first)
    failed = cli.get(first)
    assert failed.status == "failed"
    assert "database or disk is full" in failed.result["errors"][0]
    second = cli.submit("flatten", None, {})
    await _answered(cli, second)
    assert cli.get(second).status == "done"  # no strategy runs here: nothing to flatten
    assert daemon.supervisor.dead() == [] and daemon.health()[1] != "task died: control"
    await daemon.supervisor.cancel_all()
    cli.close()


async def test_a_command_loop_that_keeps_failing_is_fatal_not_silent(daemon: Daemon) -> None:
    """The loop as the daemon starts it (among its critical tasks): the control table made
    unreadable, every poll raises; after a few the task ends and the daemon stops with
    exit code 1, the health check naming the task."""
    cli = _cli(daemon)
    daemon.commands.poll_seconds = 0.01
    daemon._start_loops()
    cli._conn.execute("ALTER TABLE control_commands RENAME TO control_commands_gone")
    async with asyncio.timeout(10):
        while not daemon.stop_requested:
            await asyncio.sleep(0.01)
    assert daemon.supervisor.dead() == ["control"]
    assert daemon.health() == (False, "task died: control")
    assert daemon.exit_code == EXIT_FAILURE
    await daemon.supervisor.cancel_all()
    cli.close()
