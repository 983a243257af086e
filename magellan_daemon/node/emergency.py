"""Emergency stops: a strategy whose closed trades trip its ``[emergency]`` limits is halted.

The limits are evaluated over running totals (``emergency_totals``) after each closing sell
and after each session's close. A trip halts the strategy as ``magellan halt`` would (its
exits keep working) and says so loudly.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from magellan_core.clock import Clock
from magellan_daemon.config.loading import StrategyConfig
from magellan_daemon.ledger.store import Ledger
from magellan_daemon.node.emergency_totals import EmergencyTotals

log = logging.getLogger(__name__)


class EmergencyStops:
    """The emergency-stop check of each strategy."""

    def __init__(
        self, *, strategies: Mapping[str, StrategyConfig], ledger: Ledger, clock: Clock
    ) -> None:
        self._strategies = strategies
        self._ledger = ledger
        self._clock = clock
        self.totals = EmergencyTotals(ledger)

    def check(self, strategy: str) -> None:
        """Evaluate the strategy's emergency-stop conditions over its closed trades; a trip
        halts it and is logged at ERROR."""
        config = self._strategies.get(strategy)
        if config is None or self._ledger.halted(strategy):
            return
        reason = self.totals.reason(strategy, config.spec.emergency)
        if reason is None:
            return
        self._ledger.halt(strategy, f"emergency stop: {reason}", "emergency", self._clock.now())
        log.error(
            "EMERGENCY STOP %s: %s; no new entries until `magellan resume %s`",
            strategy,
            reason,
            strategy,
            extra={"fields": {"STRATEGY": strategy, "EVENT": "emergency_stop"}},
        )
