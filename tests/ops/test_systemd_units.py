"""The systemd units: `systemd-analyze security` score, `systemd-analyze verify`, contents.

`systemd-analyze` works without systemd as PID 1 (`--offline=true` for security; `verify`
loads the unit files it is given). CI installs Debian's systemd package in `.ci/run` when the
tool is missing, so a missing tool FAILS here rather than skipping.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNIT_DIR = REPO / "systemd"
MAX_EXPOSURE = 2.5  # "OK" or better in systemd-analyze's rating
EXEC_START = "/opt/magellan/.venv/bin/magellan run"
# unit file -> the name analysed (a template is analysed as one of its instances)
UNITS = {"magellan.service": "magellan.service", "magellan@.service": "magellan@main.service"}
# The only keys in which the template may differ from the plain unit.
INSTANCE_KEYS = {
    "Description",
    "ExecStart",
    "EnvironmentFile",
    "WorkingDirectory",
    "StateDirectory",
    "LogsDirectory",
}


@pytest.fixture(scope="module")
def analyze() -> str:
    """Path of systemd-analyze, or a failure saying how to get it."""
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.fail(
            "systemd-analyze not found: run .ci/run, or install Debian's systemd package "
            "(apt-get update && apt-get install -y --no-install-recommends systemd)"
        )
    return found


def _settings(unit_file: Path) -> dict[str, dict[str, list[str]]]:
    """Section -> key -> every value assigned (systemd allows a key more than once)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in unit_file.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def _copy_for_analysis(unit: str, tmp_path: Path) -> Path:
    """The unit in tmp_path with ExecStart pointing at this venv's real `magellan`.

    `verify` checks that ExecStart's binary exists and is executable; on a development or CI
    machine /opt/magellan does not exist, so the copy runs the checkout's console script
    instead. Nothing else changes.
    """
    magellan = Path(sys.executable).parent / "magellan"
    assert magellan.is_file(), f"{magellan} missing: run `make install`"
    text = (UNIT_DIR / unit).read_text()
    assert text.count(f"ExecStart={EXEC_START} ") == 1, unit
    copy = tmp_path / unit
    copy.write_text(text.replace(f"ExecStart={EXEC_START.split()[0]}", f"ExecStart={magellan}"))
    return copy


def _verify(analyze: str, unit_path: Path, name: str) -> tuple[int, list[str]]:
    """Run verify; its exit code and the stderr lines that mention the unit."""
    target = unit_path.parent / name
    result = subprocess.run(
        [analyze, "verify", "--man=no", str(target)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    stem = name.split("@")[0]
    lines = [line for line in result.stderr.splitlines() if stem in line]
    return result.returncode, lines


@pytest.mark.parametrize(("unit", "name"), UNITS.items())
def test_security_exposure_is_ok(analyze: str, unit: str, name: str, tmp_path: Path) -> None:
    shutil.copy(UNIT_DIR / unit, tmp_path / unit)
    result = subprocess.run(
        [analyze, "security", "--offline=true", "--no-pager", str(tmp_path / name)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    found = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?) (\w+)", result.stdout)
    assert found, f"no score in systemd-analyze output:\n{result.stdout}\n{result.stderr}"
    score, rating = float(found.group(1)), found.group(2)
    message = f"systemd-analyze security --offline=true {name}: exposure {score} {rating}"
    print(message)
    assert score <= MAX_EXPOSURE, f"{message} (must be <= {MAX_EXPOSURE})\n{result.stdout}"
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(("unit", "name"), UNITS.items())
def test_verify_is_clean(analyze: str, unit: str, name: str, tmp_path: Path) -> None:
    returncode, complaints = _verify(analyze, _copy_for_analysis(unit, tmp_path), name)
    assert returncode == 0 and not complaints, "\n".join(complaints)


def test_verify_catches_a_mistyped_setting(analyze: str, tmp_path: Path) -> None:
    """The check above can fail: a misspelt hardening key is reported (systemd ignores it)."""
    copy = _copy_for_analysis("magellan.service", tmp_path)
    copy.write_text(copy.read_text().replace("NoNewPrivileges=", "NoNewPrivilege="))
    _, complaints = _verify(analyze, copy, "magellan.service")
    assert any("NoNewPrivilege" in line for line in complaints), complaints


@pytest.mark.parametrize("unit", UNITS)
def test_lifecycle_and_restart_settings(unit: str) -> None:
    service = _settings(UNIT_DIR / unit)["Service"]
    assert service["Type"] == ["notify"]
    assert service["NotifyAccess"] == ["main"]
    assert service["Restart"] == ["on-failure"]
    assert service["RestartPreventExitStatus"] == ["2 3"]  # config, refused credentials
    assert service["WatchdogSec"] == ["30"]
    # The daemon's drain waits up to 15 s for in-flight orders, then closes streams and the
    # ledger: the stop timeout must leave room for all of it.
    assert int(service["TimeoutStopSec"][0]) >= 60
    assert int(service["TimeoutStartSec"][0]) > 60  # the first reconciliation may take 60 s
    assert service["User"] == ["magellan"] and "DynamicUser" not in service
    assert service["ExecStart"][0].startswith(f"{EXEC_START} --config /etc/magellan/")
    assert "--log-dir %L/magellan/" in service["ExecStart"][0]
    unit_section = _settings(UNIT_DIR / unit)["Unit"]
    assert unit_section["StartLimitBurst"] and unit_section["StartLimitIntervalSec"]


@pytest.mark.parametrize("unit", UNITS)
def test_no_secret_in_the_unit(unit: str) -> None:
    service = _settings(UNIT_DIR / unit)["Service"]
    assert service["EnvironmentFile"][0].startswith("/etc/magellan/")
    assignments = " ".join(service.get("Environment", []))
    assert not re.search(r"(KEY|SECRET|TOKEN|PASSWORD)\w*=", assignments, re.IGNORECASE)


def test_template_differs_only_by_instance() -> None:
    plain = _settings(UNIT_DIR / "magellan.service")
    template = _settings(UNIT_DIR / "magellan@.service")
    assert plain.keys() == template.keys()
    for section, settings in plain.items():
        assert settings.keys() == template[section].keys(), section
        for key, values in settings.items():
            if key in INSTANCE_KEYS:
                assert all("%i" in v for v in template[section][key]), (key, template)
            else:
                assert values == template[section][key], key
    service = template["Service"]
    assert "--config /etc/magellan/%i/magellan.toml" in service["ExecStart"][0]
    assert service["StateDirectory"] == ["magellan/%i"]


def test_env_example_holds_no_values() -> None:
    lines = (UNIT_DIR / "magellan.env.example").read_text().splitlines()
    assignments = [line for line in lines if line.strip() and not line.startswith("#")]
    assert assignments, "the example names the variables"
    assert all(re.fullmatch(r"[A-Z][A-Z0-9_]*=", line) for line in assignments), assignments


def test_install_target_dry_run() -> None:
    """`make -n` prints the recipe without running it: user, 0600 credentials, reload."""
    make = shutil.which("make")
    assert make is not None
    result = subprocess.run(
        # --no-print-directory: under `make test` this is a nested make, which would add
        # "Entering/Leaving directory" lines.
        [make, "--no-print-directory", "-n", "install-systemd", "INSTANCE=main"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    recipe = result.stdout
    assert "useradd --system" in recipe
    assert "install -m 0600 -o root -g root systemd/magellan.env.example" in recipe
    assert "/etc/magellan/main/magellan.env" in recipe
    assert 'state_dir = "/var/lib/magellan/main"' in recipe  # the CLI finds the ledger
    assert "/etc/systemd/system/" in recipe
    steps = [line.strip() for line in recipe.splitlines()]
    assert steps.index("systemctl daemon-reload") > max(
        i for i, line in enumerate(steps) if line.startswith("install ")
    )
    assert "enable --now magellan@main.service" in recipe
