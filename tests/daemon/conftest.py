"""A Daemon built (not started) on the repo's configs, for tests of its pure-ish parts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from magellan_core.clock import VirtualClock
from magellan_daemon.config.loading import load_config
from magellan_daemon.node.daemon import Daemon
from magellan_daemon.node.endpoint import Endpoint
from tests.conftest import REPO

T0 = datetime(2024, 11, 4, 15, 0, tzinfo=UTC)


@pytest.fixture
def daemon(tmp_path: Path):
    config = load_config(REPO / "configs" / "magellan.toml")
    endpoint = Endpoint(
        account="main",
        key="k",
        secret="s",
        paper=True,
        trading_url="http://127.0.0.1:9",
        data_url="http://127.0.0.1:9",
        trading_ws=None,
        data_ws=None,
    )
    d = Daemon(
        config=config,
        endpoints={"main": endpoint},
        clock=VirtualClock(T0 + timedelta(days=10), speed=0),
        state_dir=tmp_path,
        log_dir=tmp_path / "trades",
    )
    yield d
    d.control.close()
    d.ledger.close()
