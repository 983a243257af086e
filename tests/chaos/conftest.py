"""No daemon outlives its chaos test (the e2e fixture, shared)."""

from tests.e2e.conftest import _kill_leftover_daemons

__all__ = ["_kill_leftover_daemons"]
