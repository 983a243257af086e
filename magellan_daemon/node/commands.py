"""Operator commands from the CLI, executed by the running daemon.

The CLI writes a command into the ledger's control table; this loop picks it up within a
second and runs it through the router (the only path to the broker): ``flatten`` cancels a
strategy's open orders and sells its own shares. It also notices halts the CLI wrote (the
router already honours them before every entry) and logs them once.

A command that fails (its handling raised, even while marking it started) is answered with
its error and the loop goes on: the CLI never waits for an answer that cannot come. A poll
that fails is logged at ERROR and tried again; after ``MAX_POLL_FAILURES`` in a row the loop
ends, and the daemon runs it as a critical task: its end stops the daemon with exit code 1
(systemd restarts it) and shows in the health check, never a silent death.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from magellan_daemon.execution.router import OrderRouter
from magellan_daemon.ledger.control import Command, ControlChannel
from magellan_daemon.ledger.store import Ledger

log = logging.getLogger(__name__)
CONTROL_POLL_SECONDS = 1.0
MAX_POLL_FAILURES = 5  # polls in a row that raised: the channel is broken, not busy


class OperatorCommands:
    """Polls the control channel and runs what the operator asked for."""

    def __init__(
        self,
        *,
        control: ControlChannel,
        ledger: Ledger,
        router: OrderRouter,
        running: Callable[[], list[str]],
    ) -> None:
        self._control = control
        self._ledger = ledger
        self._router = router
        self._running = running
        self._halts_seen: dict[str, str] = {}
        self.poll_seconds = CONTROL_POLL_SECONDS

    async def poll_forever(self) -> None:
        """Every second (wall): operator commands from the CLI, and halts it wrote. Raises
        (ending the task) only after ``MAX_POLL_FAILURES`` failed polls in a row."""
        failures = 0
        while True:
            await asyncio.sleep(self.poll_seconds)
            try:
                for command in self._control.pending():
                    await self.run(command)
                self.notice_halts()
            except Exception:
                failures += 1
                log.exception("operator commands: poll failed (%d in a row)", failures)
                if failures >= MAX_POLL_FAILURES:
                    raise
                continue
            failures = 0

    async def run(self, command: Command) -> None:
        """Execute one command and write its result for the waiting CLI; a failure of the
        handling is that result. Raises only if even the answer cannot be written."""
        log.warning("operator command %s %s", command.kind, command.strategy or "(all)")
        try:
            self._control.start(command.id)
            if command.kind != "flatten":
                self._control.finish(
                    command.id, False, {"errors": [f"unknown command {command.kind!r}"]}
                )
                return
            running = self._running()
            names = [command.strategy] if command.strategy else running
            merged: dict[str, list[Any]] = {
                "canceled": [],
                "sells": [],
                "refused": [],
                "errors": [],
            }
            for name in names:
                if name not in running:
                    merged["errors"].append(f"strategy {name!r} is not running")
                    continue
                for key, values in (await self._router.flatten(name)).items():
                    merged[key].extend(values)
            self._control.finish(command.id, not merged["errors"], merged)
        except Exception as exc:
            log.exception("operator command %s failed", command.kind)
            self._control.finish(command.id, False, {"errors": [f"{type(exc).__name__}: {exc}"]})

    def notice_halts(self) -> None:
        """Log halts and resumes written by the CLI (or an emergency stop) once each."""
        current = {halt.strategy: halt.reason for halt in self._ledger.halts()}
        for name, reason in current.items():
            if self._halts_seen.get(name) != reason:
                log.warning(
                    "%s is HALTED: %s (exits keep working)",
                    name,
                    reason,
                    extra={"fields": {"STRATEGY": name, "EVENT": "halt"}},
                )
        for name in set(self._halts_seen) - set(current):
            log.warning(
                "%s resumed: new entries allowed",
                name,
                extra={"fields": {"STRATEGY": name, "EVENT": "resume"}},
            )
        self._halts_seen = current
