"""Config loading: the shipped configs validate; each bad input exits 2 naming file, field
and reason (through ``magellan_daemon.cli.main.main``, as a user runs it)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from magellan_daemon.cli.main import main
from magellan_daemon.config.loading import load_config
from magellan_daemon.errors import ConfigError
from strategies.daily_trend import DailyTrendParams

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture
def configs(tmp_path: Path) -> Path:
    """A writable copy of ``configs/``."""
    shutil.copytree(CONFIGS, tmp_path / "configs")
    return tmp_path / "configs"


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_shipped_configs_load_with_every_spec_value() -> None:
    config = load_config(CONFIGS / "magellan.toml")
    assert config.mode == "paper" and set(config.accounts) == {"main"}
    assert set(config.strategies) == {"daily_trend", "hourly_swing", "bear_trap"}
    daily = config.strategies["daily_trend"].params
    assert isinstance(daily, DailyTrendParams)
    assert {s: (b.rsi_period, b.upper, b.lower) for s, b in daily.symbols.items()} == {
        "GOOGL": (28, 55, 45),
        "GLD": (21, 65, 35),
        "META": (28, 55, 45),
        "AAPL": (28, 65, 35),
        "QQQ": (21, 60, 40),
        "SPY": (21, 58, 42),
        "MSFT": (21, 58, 42),
        "TSLA": (28, 58, 42),
        "AMZN": (21, 55, 45),
        "IWM": (28, 65, 35),
    }
    assert all(b.allocation == 10_000 for b in daily.symbols.values())
    assert daily.execution_delay_seconds == 60 and daily.rsi_method == "ema"
    assert (daily.risk.max_open_positions, daily.risk.max_position_dollars) == (10, 10_000)
    hourly = config.strategies["hourly_swing"].params
    assert {s: (b.rsi_period, b.upper, b.lower) for s, b in hourly.symbols.items()} == {
        "TSLA": (14, 60, 40),
        "NVDA": (28, 55, 45),
    }
    assert (hourly.risk.max_open_positions, hourly.risk.max_position_dollars) == (2, 50_000)
    bear = config.strategies["bear_trap"].params
    assert len(bear.universe) == 21 and bear.risk.max_trades_per_day == 10
    assert config.strategies["bear_trap"].config_path == (CONFIGS / "bear_trap.toml").resolve()


def test_check_config_prints_what_would_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(CONFIGS / "magellan.toml")]) == 0
    out = capsys.readouterr().out
    assert "mode: paper" in out and "accounts: main" in out
    assert "daily_trend: signal 16:05 ET (close+5 on early closes), orders at next open + 60 s" in (
        out
    )
    assert "APCA_API_SECRET_KEY" not in out  # accounts by name only
    assert "symbols: TSLA NVDA" in out


BAD_INPUTS = [
    # (file, old text, new text, field named, reason fragment)
    ("daily_trend.toml", "execution_delay_seconds = 60", 'execution_delay_seconds = "soon"',
     "execution_delay_seconds", "integer"),
    ("daily_trend.toml", 'rsi_method = "ema"', 'rsi_method = "ema"\nrsi_methd = "ema"',
     "rsi_methd", "unknown field"),
    ("daily_trend.toml", "GOOGL = { rsi_period = 28, upper = 55, lower = 45",
     "GOOGL = { rsi_period = 28, upper = 40, lower = 45", "symbols.GOOGL",
     "upper band 40.0 must be above lower band 45.0"),
    ("daily_trend.toml", "GLD   = { rsi_period = 21, upper = 65, lower = 35, allocation = 10_000",
     "GLD   = { rsi_period = 21, upper = 65, lower = 35, allocation = -5",
     "symbols.GLD.allocation", "greater than 0"),
    ("hourly_swing.toml", "[risk]", "[risk\n", "(syntax)", "TOML syntax error"),
    ("hourly_swing.toml", "max_open_positions = 2", "max_open_positions = 2.5",
     "risk.max_open_positions", "integer"),
    ("magellan.toml", 'config = "hourly_swing.toml"', 'config = "nope.toml"',
     "(file)", "file not found"),
    ("magellan.toml", 'mode = "paper"', 'mode = "yolo"', "mode", "'paper' or 'live'"),
    ("magellan.toml", 'key_env = "APCA_API_KEY_ID"', 'key_env = "PKA1B2-secret"',
     "accounts.main.key_env", "NAME of an environment variable"),
    ("magellan.toml", 'account = "main"', 'account = "other"', "strategies.daily_trend.account",
     "unknown account 'other'"),
    ("magellan.toml", "[strategies.bear_trap]", "[strategies.bear_trappe]", "strategies",
     "unknown strategy 'bear_trappe' (known: daily_trend, hourly_swing, bear_trap)"),
]  # fmt: skip


@pytest.mark.parametrize(("file", "old", "new", "field", "reason"), BAD_INPUTS)
@pytest.mark.parametrize("command", ["check-config", "signals"])
def test_bad_config_exits_2_naming_file_field_and_reason(
    configs: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    command: str,
    file: str,
    old: str,
    new: str,
    field: str,
    reason: str,
) -> None:
    edit(configs / file, old, new)
    daemon = str(configs / "magellan.toml")
    strategy = "hourly_swing" if file == "hourly_swing.toml" else "daily_trend"
    if command == "check-config":
        argv = ["check-config", daemon]
    else:
        argv = ["signals", "--strategy", strategy, "--bars", str(tmp_path), "--config", daemon]
        argv += ["--out", str(tmp_path / "out.csv")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    bad_file = configs / ("nope.toml" if "nope" in new else file)
    assert f"{bad_file.resolve()}: {field}: " in err
    assert reason in err
    assert "PKA1B2" not in err  # a pasted key is never echoed


def test_config_error_str_and_fields() -> None:
    err = ConfigError("x.toml", "a.b", "why")
    assert str(err) == "x.toml: a.b: why" and (err.file, err.field, err.reason) == (
        "x.toml",
        "a.b",
        "why",
    )


def test_strategy_file_alone_is_accepted_by_signals(tmp_path: Path) -> None:
    from magellan_daemon.cli.signals import strategy_params

    params = strategy_params("hourly_swing", CONFIGS / "hourly_swing.toml")
    assert set(params.symbols) == {"TSLA", "NVDA"}
