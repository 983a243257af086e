"""Operator commands from the CLI, executed by the running daemon.

The CLI writes a command into the ledger's control table; this loop picks it up within a
second and runs it through the router (the only path to the broker): ``flatten`` cancels a
strategy's open orders and sells its own shares. It also notices halts the CLI wrote (the
router already honours them before every entry) and logs them once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from magellan_daemon.control import Command, ControlChannel
from magellan_daemon.ledger.store import Ledger
from magellan_daemon.router import OrderRouter

log = logging.getLogger(__name__)
CONTROL_POLL_SECONDS = 1.0


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

    async def poll_forever(self) -> None:
        """Every second (wall): operator commands from the CLI, and halts it wrote."""
        while True:
            await asyncio.sleep(CONTROL_POLL_SECONDS)
            for command in self._control.pending():
                await self.run(command)
            self.notice_halts()

    async def run(self, command: Command) -> None:
        """Execute one command and write its result for the waiting CLI."""
        self._control.start(command.id)
        log.warning("operator command %s %s", command.kind, command.strategy or "(all)")
        try:
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
