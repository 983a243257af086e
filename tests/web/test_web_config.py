"""``[web]``: loopback by default; any other bind needs a token from the environment, or
the daemon refuses to start (exit 2, a clear message, the token never printed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from magellan_daemon.config.loading import load_config
from magellan_daemon.errors import ConfigError
from tests.e2e.harness import REPO, config_dir


def _config(tmp: Path, web: str) -> Path:
    return config_dir(tmp, {"magellan.toml": ("[web]\nport = 8780", web)})


def test_default_bind_is_loopback_and_the_repo_config_serves_8780(tmp_path: Path) -> None:
    web = load_config(REPO / "configs" / "magellan.toml").web
    assert web is not None and (web.bind, web.port, web.token_env) == ("127.0.0.1", 8780, None)


def test_another_bind_without_token_env_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(_config(tmp_path, '[web]\nport = 0\nbind = "0.0.0.0"'))
    assert err.value.field == "web" and "token_env" in err.value.reason


def test_a_pasted_token_in_token_env_is_not_echoed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(_config(tmp_path, '[web]\nport = 0\ntoken_env = "s3cr3t-t0ken-value"'))
    assert "s3cr3t" not in str(err.value)


def _run(config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "magellan_daemon", "run", "--config", str(config), "--sim"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_run_exits_2_when_the_token_variable_is_unset(tmp_path: Path) -> None:
    config = _config(tmp_path, '[web]\nport = 0\nbind = "0.0.0.0"\ntoken_env = "MG_WEB_TOKEN"')
    env = {k: v for k, v in os.environ.items() if k != "MG_WEB_TOKEN"}
    done = _run(config, env)
    assert done.returncode == 2, done.stderr
    assert "MG_WEB_TOKEN is not set or empty" in done.stderr
