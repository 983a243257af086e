"""No daemon outlives its test, even one that failed half way."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.harness import STARTED


@pytest.fixture(autouse=True)
def _kill_leftover_daemons() -> Iterator[None]:
    yield
    while STARTED:
        proc = STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
