"""The space file: values checked against the strategy's own parameter model before a trial."""

from __future__ import annotations

from pathlib import Path

import pytest

from magellan_daemon.config.loading import load_strategy_params
from magellan_daemon.research.space import SpaceError, load_space, with_values
from strategies.bear_trap.params import BearTrapParams
from strategies.daily_trend import DailyTrendParams

BASE = BearTrapParams()
CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def space_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "space.toml"
    path.write_text(text)
    return path


def test_a_range_steps_to_exact_decimals_and_the_grid_varies_the_last_fastest(
    tmp_path: Path,
) -> None:
    path = space_file(
        tmp_path,
        "[bear_trap]\nmin_drop_pct = [0.12, 0.15]\n"
        "stop_atr_multiple = { low = 0.3, high = 0.9, step = 0.15 }\n",
    )
    space = load_space(path, "bear_trap", BASE, "grid")
    assert space.parameters[1].grid_values() == (0.3, 0.45, 0.6, 0.75, 0.9)
    grid = space.grid()
    assert len(grid) == space.size("grid", trials=100) == 10
    assert space.size("optuna", trials=100) == 100
    assert grid[:2] == [
        {"min_drop_pct": 0.12, "stop_atr_multiple": 0.3},
        {"min_drop_pct": 0.12, "stop_atr_multiple": 0.45},
    ]


def test_an_int_parameter_ranges_over_ints(tmp_path: Path) -> None:
    path = space_file(tmp_path, "[bear_trap]\natr_period = { low = 10, high = 20, step = 5 }\n")
    assert load_space(path, "bear_trap", BASE, "grid").grid() == [
        {"atr_period": 10},
        {"atr_period": 15},
        {"atr_period": 20},
    ]


def test_nested_models_and_tables_are_swept_by_dotted_path(tmp_path: Path) -> None:
    base = load_strategy_params("daily_trend", CONFIGS / "daily_trend.toml")
    assert isinstance(base, DailyTrendParams)
    path = space_file(
        tmp_path,
        "[daily_trend.symbols.SPY]\nupper = [55, 60]\n[daily_trend.risk]\n"
        "max_open_positions = [3]\n",
    )
    space = load_space(path, "daily_trend", base, "grid")
    assert space.names == ["symbols.SPY.upper", "risk.max_open_positions"]
    changed = with_values(base, space.grid()[1])
    assert changed.symbols["SPY"].upper == 60  # type: ignore[attr-defined]
    assert changed.risk.max_open_positions == 3  # type: ignore[attr-defined]
    assert changed.symbols["QQQ"] == base.symbols["QQQ"]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "search", "message"),
    [
        ("[bear_trap]\nmin_drop = [0.1]\n", "grid", "min_drop: unknown parameter"),
        ("[bear_trap]\nmin_drop_pct = [0.1, 1.5]\n", "grid", "min_drop_pct: 1.5 is refused"),
        ("[bear_trap]\natr_period = [0, 14]\n", "grid", "atr_period: 0 is refused"),
        ("[bear_trap]\natr_period = [14.5]\n", "grid", "atr_period: 14.5 is refused"),
        (
            "[bear_trap]\nstop_atr_multiple = { low = -1.0, high = 0.5, step = 0.5 }\n",
            "grid",
            "stop_atr_multiple: -1.0 is refused",
        ),
        (
            "[bear_trap]\ntp1_fraction = [0.8, 0.9]\ntp2_fraction = [0.3, 0.5]\n",
            "grid",
            "tp1_fraction, tp2_fraction: every combination is refused",
        ),
        (
            "[bear_trap]\ntp1_fraction = { low = 0.8, high = 0.9 }\ntp2_fraction = [0.3]\n",
            "optuna",
            "every combination is refused",
        ),
        ("[bear_trap]\nmin_drop_pct = [0.1\n", "grid", "(syntax): TOML syntax error"),
        ("[daily_trend]\nrsi_method = ['ema']\n", "grid", "[bear_trap]: no such table"),
        ("[bear_trap]\n", "grid", "[bear_trap]: no parameter to sweep"),
        ("[bear_trap]\nmin_drop_pct = []\n", "grid", "an empty list"),
        ("[bear_trap]\nmin_drop_pct = 0.1\n", "grid", "expected a list of values"),
        ("[bear_trap]\nmin_drop_pct = [0.1, 0.1]\n", "grid", "listed twice"),
        ("[bear_trap]\nuniverse = [['GME']]\n", "grid", "universe: not a single value"),
        (
            "[bear_trap]\nmin_drop_pct = { low = 0.1, high = 0.2 }\n",
            "grid",
            "a range needs a step under --search grid",
        ),
        (
            "[bear_trap]\nmin_drop_pct = { low = 0.1, high = 0.2, step = 0.05, log = true }\n",
            "grid",
            "log = true is for --search optuna",
        ),
        ("[bear_trap]\nmin_drop_pct = { low = 0.2, high = 0.1 }\n", "optuna", "must be above"),
        ("[bear_trap]\nmin_drop_pct = { low = 0.1 }\n", "optuna", "a range needs high"),
        ("[bear_trap]\natr_period = { low = 1.5, high = 9 }\n", "optuna", "low must be an integer"),
        (
            "[bear_trap]\nmin_drop_pct = { low = 0.1, high = 0.2, stride = 1 }\n",
            "optuna",
            "unknown key 'stride'",
        ),
    ],
)
def test_a_space_that_cannot_be_swept_names_the_file_the_parameter_and_why(
    tmp_path: Path, text: str, search: str, message: str
) -> None:
    path = space_file(tmp_path, text)
    with pytest.raises(SpaceError) as caught:
        load_space(path, "bear_trap", BASE, search)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_missing_file_is_a_space_error(tmp_path: Path) -> None:
    with pytest.raises(SpaceError, match="file not found"):
        load_space(tmp_path / "none.toml", "bear_trap", BASE, "grid")


def test_a_refused_combination_among_valid_ones_is_left_to_the_sweep(tmp_path: Path) -> None:
    path = space_file(tmp_path, "[bear_trap]\ntp1_fraction = [0.5, 0.8]\ntp2_fraction = [0.3]\n")
    space = load_space(path, "bear_trap", BASE, "grid")
    assert len(space.grid()) == 2  # 0.8 + 0.3 > 1 is skipped and counted by the sweep
