"""Shared test fixtures: where the real bars live."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("MAGELLAN_SHARED_DATA", REPO.parent / "shared" / "data"))
BARS_DIR = SHARED_DATA / "bars"
CRASH_DAYS = SHARED_DATA / "crash_days.csv"


@pytest.fixture(scope="session")
def bars_dir() -> Path:
    """``../shared/data/bars`` (CI has it beside the checkout)."""
    if not BARS_DIR.is_dir():
        pytest.fail(f"real bars not found at {BARS_DIR}: put ../shared beside the checkout")
    return BARS_DIR
