"""bench/goals.py's table logic: goals parsed, met or not, figures missing from the run."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def goals() -> ModuleType:
    """bench/goals.py, loaded by path (bench/ is scripts, not a package)."""
    sys.path.insert(0, str(BENCH))  # for its `from common import FIGURES`
    try:
        spec = importlib.util.spec_from_file_location("bench_goals", BENCH / "goals.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # its dataclasses look their module up
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


def record(name: str, value: float | None, unit: str, bench: str = "bench_x") -> str:
    return json.dumps({"name": name, "value": value, "unit": unit, "details": "", "bench": bench})


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("<= 4x", ("<=", 4.0, "x")),
        (">= 10x", (">=", 10.0, "x")),
        (">= 300k bars/s", (">=", 300_000.0, "bars/s")),
        ("< 150 MiB", ("<", 150.0, "MiB")),
        ("<= 1.3x", ("<=", 1.3, "x")),
        ("< 5 ms", ("<", 5.0, "ms")),
        ("> 1,000 bars/s", (">", 1000.0, "bars/s")),
        (">= 2M bars/s", (">=", 2_000_000.0, "bars/s")),
    ],
)
def test_goal_parsing(goals: ModuleType, text: str, parsed: tuple) -> None:
    assert goals.parse_goal(text) == parsed


@pytest.mark.parametrize("text", ["10x", "about 50 ms", "<= x", ""])
def test_a_goal_without_operator_and_number_is_refused(goals: ModuleType, text: str) -> None:
    with pytest.raises(ValueError):
        goals.parse_goal(text)


def test_met_compares_in_the_goal_unit(goals: ModuleType) -> None:
    assert goals.met(0.93, "s", "< 1 s")
    assert not goals.met(1.0, "s", "< 1 s")  # strict
    assert goals.met(1.1, "x", "<= 1.1x")  # bound included
    assert goals.met(4.2, "ms", "< 0.005 s")
    assert not goals.met(1400, "ms", "< 5 ms")
    assert goals.met(320_000, "bars/s", ">= 300k bars/s")
    assert not goals.met(80_000, "bars/s", ">= 300k bars/s")
    with pytest.raises(ValueError):
        goals.met(3.0, "x", "< 5 ms")


def test_every_goal_of_the_script_parses(goals: ModuleType) -> None:
    for goal in goals.GOALS:
        for check in goal.checks:
            goals.parse_goal(check.goal)


def test_rows_met_not_met_and_not_measured(goals: ModuleType) -> None:
    Goal, Check = goals.Goal, goals.Check
    table = (
        Goal("fast", (Check("speed", ">= 300k bars/s"),), "bench_a"),
        Goal("slow", (Check("latency", "< 5 ms"),), "bench_b"),
        Goal("absent", (Check("nobody reports this", "< 1 s"),), "bench_c"),
        Goal("null", (Check("nan figure", "< 1 s"),), "bench_d"),
        Goal(
            "two",
            (Check("cold", "<= 1.3x", "with cold CSVs", "cold {}"), Check("warm", "<= 1.1x")),
            "bench_e",
        ),
    )
    figures = goals.read_figures(
        [
            record("speed", 250_000, "bars/s", "bench_a"),
            record("speed", 310_000, "bars/s", "bench_a"),  # run again: the last counts
            "{torn lin",
            record("  latency", 1.2, "ms", "bench_b"),  # an indented breakdown name
            record("nan figure", None, "s", "bench_d"),
            record("cold", 1.2, "x", "bench_e"),
        ]
    )
    rows = {r[0]: r for r in (goals.row(g, figures) for g in table)}
    assert rows["fast"] == ("fast", ">= 300k bars/s", "310,000 bars/s", "yes", "bench_a")
    assert rows["slow"][2:] == ("1.20 ms", "yes", "bench_b")
    assert rows["absent"][2:] == ("not measured", "-", "bench_c")
    assert rows["null"][2:] == ("not measured", "-", "bench_d")
    assert rows["two"][1] == "<= 1.3x with cold CSVs, <= 1.1x"
    assert rows["two"][2:] == ("cold 1.20x, warm: not measured", "-", "bench_e")
    figures = goals.read_figures([record("cold", 1.5, "x"), record("warm", 1.0, "x")])
    assert goals.row(table[4], figures)[3] == "no"  # one measured check fails: no


def test_table_from_a_figures_file(goals: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "figures.jsonl"
    path.write_text(record("start to READY", 2.07, "s", "bench_ready") + "\n")
    lines = goals.table(goals.read_figures(path.read_text().splitlines()))
    header = [c.strip() for c in lines[0].split("|")[1:-1]]
    assert header == ["figure", "goal", "measured", "met", "benchmark"]
    assert len(lines) == 2 + len(goals.GOALS)
    assert len({len(line) for line in lines}) == 1  # the columns line up
    ready = next(line for line in lines if "| start to READY" in line)
    cells = [c.strip() for c in ready.split("|")[1:-1]]
    assert cells == ["start to READY", "< 1 s", "2.07 s", "no", "bench_ready"]
    assert sum("not measured" in line for line in lines) == len(goals.GOALS) - 1
