"""The strategy registry: each descriptor agrees with its strategy, resolves from the shipped
configs, and a new strategy needs nothing but a descriptor (and its configs)."""

from __future__ import annotations

import dataclasses
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from magellan_daemon.cli.check_config import describe
from magellan_daemon.config.loading import load_config
from magellan_daemon.domain import client_order_id
from magellan_daemon.errors import ConfigError
from magellan_daemon.runtime.drives import drive_of
from strategies.api.model import ALL_SYMBOLS, Strategy
from strategies.registry import BEAR_TRAP, REGISTRY, descriptor

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
SIGNAL_TIME = datetime(2024, 3, 1, 21, 5, tzinfo=UTC)


@pytest.mark.parametrize("name", list(REGISTRY))
def test_descriptor_agrees_with_its_strategy(name: str) -> None:
    kind = descriptor(name)
    config = load_config(CONFIGS / "magellan.toml").strategies[name]
    strategy = kind.build(config.params, None)  # type: ignore[arg-type]
    assert strategy.name == kind.name and strategy.timeframe == kind.timeframe
    restored = kind.build(config.params, strategy.snapshot())  # type: ignore[arg-type]
    assert restored.snapshot() == strategy.snapshot()
    assert config.spec.symbols and config.spec.drive == kind.drive
    # Every hook of the protocol is implemented (the daemon calls them without looking).
    hooks = [n for n, v in vars(Strategy).items() if callable(v) and not n.startswith("_")]
    assert {"on_bar", "on_clock", "snapshot", "rebase"} <= set(hooks)
    for built in (strategy, kind.build(config.params, None, explain_skips=False)):  # type: ignore[arg-type]
        assert all(callable(getattr(built, hook, None)) for hook in hooks), hooks
    assert client_order_id(name, "SPY", SIGNAL_TIME, "entry").startswith(
        f"mg-{kind.order_code}-SPY-"
    )


def test_shipped_specs() -> None:
    specs = {n: s.spec for n, s in load_config(CONFIGS / "magellan.toml").strategies.items()}
    assert specs["daily_trend"].execution_delay == timedelta(seconds=60)
    at_open = {n: drive_of(s.drive).executes_at_open for n, s in specs.items()}
    assert at_open == {"daily_trend": True, "hourly_swing": True, "bear_trap": False}
    assert specs["bear_trap"].routing.max_spread_pct == 0.02
    assert specs["hourly_swing"].routing.max_spread_pct is None
    assert specs["hourly_swing"].symbols == ("TSLA", "NVDA")  # config order
    assert "orders at next open + 60 s" in specs["daily_trend"].schedule


def test_unknown_strategy_is_a_key_error_naming_the_known() -> None:
    with pytest.raises(KeyError, match="known: daily_trend, hourly_swing, bear_trap"):
        descriptor("bear_trappe")


def test_all_symbols_only_where_the_strategy_accepts_it() -> None:
    params = load_config(CONFIGS / "magellan.toml").strategies["bear_trap"].params
    everything = BEAR_TRAP.watching_all_symbols(params)  # type: ignore[arg-type]
    assert BEAR_TRAP.resolve(everything).whole_market
    assert BEAR_TRAP.resolve(everything).symbols == (ALL_SYMBOLS,)
    daily = load_config(CONFIGS / "magellan.toml").strategies["daily_trend"].params
    with pytest.raises(ValueError, match="cannot watch every symbol"):
        descriptor("daily_trend").watching_all_symbols(daily)  # type: ignore[arg-type]


def with_fourth_strategy(monkeypatch: pytest.MonkeyPatch, configs: Path, account: str) -> None:
    """Register a fourth strategy (a copy of Bear Trap under a new name) and configure it:
    what adding a strategy takes, outside the daemon."""
    fourth = dataclasses.replace(BEAR_TRAP, name="crash_watch", order_code="cw")
    monkeypatch.setitem(REGISTRY, "crash_watch", fourth)
    shutil.copy(configs / "bear_trap.toml", configs / "crash_watch.toml")
    with (configs / "magellan.toml").open("a") as out:
        out.write(
            f'\n[strategies.crash_watch]\nconfig = "crash_watch.toml"\naccount = "{account}"\n'
        )


def test_a_fourth_strategy_needs_only_its_descriptor_and_configs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configs = tmp_path / "configs"
    shutil.copytree(CONFIGS, configs)
    text = (configs / "magellan.toml").read_text()
    (configs / "magellan.toml").write_text(
        text + '\n[accounts.second]\nkey_env = "SECOND_KEY"\nsecret_env = "SECOND_SECRET"\n'
    )
    with_fourth_strategy(monkeypatch, configs, "second")
    config = load_config(configs / "magellan.toml")
    assert config.strategies["crash_watch"].spec.drive == "minute_stream"
    assert "    schedule: crash_watch: every 1Min bar 09:30–close" in describe(config)
    assert client_order_id("crash_watch", "GME", SIGNAL_TIME, "entry").startswith("mg-cw-GME-")


def test_two_minute_streams_cannot_share_an_account(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configs = tmp_path / "configs"
    shutil.copytree(CONFIGS, configs)
    with_fourth_strategy(monkeypatch, configs, "main")
    with pytest.raises(ConfigError, match="one market-data stream per account"):
        load_config(configs / "magellan.toml")


def test_the_daemon_refuses_a_strategy_configured_for_other_bars(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Hourly Swing's rule may run on 1Min bars in the backtest; the daemon's hourly jobs
    would feed it hourly bars, so check-config and run refuse it (exit 2, naming it)."""
    from magellan_daemon.cli.main import main

    configs = tmp_path / "configs"
    shutil.copytree(CONFIGS, configs)
    hourly = configs / "hourly_swing.toml"
    hourly.write_text('timeframe = "1Min"\n' + hourly.read_text())
    config = load_config(configs / "magellan.toml")  # the backtest may use it
    assert config.strategies["hourly_swing"].spec.timeframe == "1Min"
    for command in (["check-config", str(configs / "magellan.toml")],
                    ["run", "--sim", "--config", str(configs / "magellan.toml")]):  # fmt: skip
        assert main(command) == 2
        assert "the daemon drives hourly_swing with '1Hour' bars" in capsys.readouterr().err
