"""The live guard and the mode rules: live only with the config AND --live."""

from __future__ import annotations

from pathlib import Path

import pytest

from magellan_daemon.cli.main import main
from magellan_daemon.cli.run import decide_mode


@pytest.mark.parametrize(
    ("config_mode", "live_flag", "mode", "missing"),
    [
        ("paper", False, "paper", None),
        ("paper", True, None, 'set mode = "live" in the config'),
        ("live", False, None, "--live was not given"),
        ("live", True, "live", None),
    ],
)
def test_live_guard_four_combinations(
    config_mode: str, live_flag: bool, mode: str | None, missing: str | None
) -> None:
    decision = decide_mode(
        config_mode=config_mode,
        live_flag=live_flag,
        sim_flag=False,
        have_keys=True,
        broker_url=None,
    )
    assert decision.mode == mode
    if missing:
        assert decision.error is not None and missing in decision.error


def test_sim_without_keys_and_never_live_by_accident() -> None:
    assert (
        decide_mode(
            config_mode="paper", live_flag=False, sim_flag=False, have_keys=False, broker_url=None
        ).mode
        == "sim"
    )
    assert (
        decide_mode(
            config_mode="paper", live_flag=False, sim_flag=True, have_keys=True, broker_url=None
        ).mode
        == "sim"
    )
    assert (
        decide_mode(
            config_mode="paper",
            live_flag=False,
            sim_flag=False,
            have_keys=True,
            broker_url="http://x",
        ).mode
        == "paper"
    )
    live_sim = decide_mode(
        config_mode="live", live_flag=True, sim_flag=True, have_keys=True, broker_url=None
    )
    assert live_sim.mode is None
    no_keys = decide_mode(
        config_mode="live", live_flag=True, sim_flag=False, have_keys=False, broker_url=None
    )
    assert no_keys.mode is None and "keys" in (no_keys.error or "")


def test_a_systemd_service_without_keys_refuses_instead_of_simulating() -> None:
    refused = decide_mode(
        config_mode="paper",
        live_flag=False,
        sim_flag=False,
        have_keys=False,
        broker_url=None,
        under_systemd=True,
    )
    assert refused.mode is None and "EnvironmentFile" in (refused.error or "")
    on_purpose = decide_mode(
        config_mode="paper",
        live_flag=False,
        sim_flag=True,
        have_keys=False,
        broker_url=None,
        under_systemd=True,
    )
    assert on_purpose.mode == "sim"


@pytest.mark.parametrize(
    ("start", "until"),
    [
        ([], "2024-11-19T15:00:00Z"),  # before the simulator's default start (2025-01-16)
        (["--sim-start", "2024-11-18T14:30:00Z"], "2024-11-18T14:30:00Z"),
    ],
)
def test_sim_until_not_after_the_start_is_refused(
    start: list[str], until: str, capsys: pytest.CaptureFixture[str]
) -> None:
    configs = Path(__file__).resolve().parents[3] / "configs" / "magellan.toml"
    argv = ["run", "--sim", "--config", str(configs), *start, "--sim-until", until]
    assert main(argv) == 2
    assert "--sim-until" in capsys.readouterr().err
