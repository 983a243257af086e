"""Issue 19's goals against the figures of one ``make bench`` run, as one table.

Every benchmark's report() (bench/common.py) appends its figures to bench/out/figures.jsonl,
which ``make bench`` empties before the benchmarks and reads with this script after them.
For each goal the table gives the figure(s) measured, whether the goal is met and the
benchmark that measured it. A figure the run did not produce (a benchmark failed, or was
skipped as bench_peers is without the peers' venvs) prints "not measured"; if a figure was
reported more than once (a benchmark run again by hand), the last one counts.

The goals are written here once, each tied to the name(s) its benchmark reports.

    .venv/bin/python bench/goals.py [FIGURES]
"""

from __future__ import annotations

import json
import operator
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from common import FIGURES


@dataclass(frozen=True)
class Check:
    """One bound on one reported figure."""

    figure: str  # the name the benchmark reports (without its indent)
    goal: str  # "<= 4x", ">= 300k bars/s", "< 5 ms"
    words: str = ""  # said after the bound in the goal column ("with cold CSVs")
    shown: str = "{}"  # the value in the measured column ("cold {}", "{} a day")


@dataclass(frozen=True)
class Goal:
    """One row: the figure as the issue words it, its checks (all must hold), figures shown
    beside the measured value as (label, name), and the benchmark expected to measure it."""

    figure: str
    checks: tuple[Check, ...]
    bench: str
    context: tuple[tuple[str, str], ...] = ()


GOALS = (
    Goal(
        "backtest, RSI rule on all shared 1Min bars, ours / backtrader `runonce`",
        (Check("RSI rule, ours / backtrader runonce", ">= 10x"),),
        "bench_peers",
    ),
    Goal(
        "same, ours / NautilusTrader with orders",
        (Check("RSI rule, ours / nautilus", ">= 5x"),),
        "bench_peers",
    ),
    Goal(
        "backtest, Bear Trap on all shared 1Min bars",
        (Check("backtest bear_trap throughput", ">= 300k bars/s"),),
        "bench_backtest",
    ),
    Goal(
        "whole `magellan backtest` command / its driven part, Bear Trap",
        (
            Check(
                "backtest bear_trap whole command / driven part, cold",
                "<= 1.3x",
                "with cold CSVs",
                "cold {}",
            ),
            Check(
                "backtest bear_trap whole command / driven part, cached",
                "<= 1.1x",
                "cached",
                "cached {}",
            ),
        ),
        "bench_backtest",
    ),
    Goal(
        "same, RSI rule (Hourly Swing's on 1Min)",
        (
            Check(
                "backtest hourly_swing whole command / driven part, cold",
                "<= 1.3x",
                "with cold CSVs",
                "cold {}",
            ),
            Check(
                "backtest hourly_swing whole command / driven part, cached",
                "<= 1.1x",
                "cached",
                "cached {}",
            ),
        ),
        "bench_backtest",
    ),
    Goal(
        "10,000-symbol burst / msgpack alone unpacking the same frames",
        (Check("burst / msgpack alone", "<= 4x", "(about 50 ms)"),),
        "bench_fullmarket",
        (
            ("burst", "full-market burst (10,000 symbols)"),
            ("msgpack", "msgpack alone unpacking the same frames"),
        ),
    ),
    Goal(
        "bar decoded to entry order at the REST call, p99",
        (Check("bar to order p99", "< 5 ms"),),
        "bench_fullmarket",
        (("p50", "bar to order p50"),),
    ),
    Goal(
        "start to READY",
        (Check("start to READY", "< 1 s"),),
        "bench_ready",
    ),
    Goal(
        "RSS watching 10,000 symbols",
        (
            Check("daemon RSS watching the market", "< 150 MiB"),
            # "Flat across days" as a number: at most 5 MiB more from day 1's close to day 2's
            # first hour (bench_fullmarket's "daemon RSS per day").
            Check("daemon RSS per day", "<= 5 MiB", "a day (flat across days)", "{} a day"),
        ),
        "bench_fullmarket",
    ),
    # Issue 22: magellan sweep (bench_sweep).
    Goal(
        "sweep: trials per second, all cores / 1 worker, per core",
        (Check("sweep scaling efficiency (all cores / 1 worker / cores)", ">= 0.9x"),),
        "bench_sweep",
    ),
    Goal(
        "sweep: per-trial overhead of Ray against the local pool (trials of >= 1 s)",
        (Check("sweep Ray overhead per trial against the local pool", "< 5 %"),),
        "bench_sweep",
    ),
    Goal(
        "sweep: a trial against the same `magellan backtest` (identical metrics)",
        (Check("sweep trial / the same magellan backtest, time", "<= 1.05x"),),
        "bench_sweep",
    ),
    Goal(
        "sweep: resume after SIGKILL",
        (Check("sweep resume after SIGKILL, trials lost or run twice", "<= 0 trials"),),
        "bench_sweep",
    ),
)

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}
_GOAL = re.compile(r"^\s*(<=|>=|<|>)\s*(\d[\d,]*(?:\.\d+)?)(?:([kM])(?![A-Za-z]))?\s*(.*?)\s*$")
_MULTIPLIERS = {"": 1.0, "k": 1e3, "M": 1e6}
# Units that convert into one another: each group's units in its base unit.
_SCALES = (
    {"s": 1.0, "ms": 1e-3, "µs": 1e-6, "us": 1e-6},
    {"bytes": 1.0, "B": 1.0, "KiB": 2.0**10, "MiB": 2.0**20, "GiB": 2.0**30},
)


def parse_goal(goal: str) -> tuple[str, float, str]:
    """``"<= 1.3x"`` -> ``("<=", 1.3, "x")``; ``">= 300k bars/s"`` -> ``(">=", 300000.0,
    "bars/s")``. Raises ValueError on anything else."""
    m = _GOAL.match(goal)
    if not m:
        raise ValueError(f"not a goal: {goal!r} (want an operator, a number and a unit)")
    op, number, multiplier, unit = m.groups()
    return op, float(number.replace(",", "")) * _MULTIPLIERS[multiplier or ""], unit


def convert(value: float, unit: str, to: str) -> float:
    """``value`` in ``unit`` expressed in ``to`` (s/ms/µs, bytes/KiB/MiB/GiB); ValueError if
    the two do not convert."""
    if unit == to:
        return value
    for scales in _SCALES:
        if unit in scales and to in scales:
            return value * scales[unit] / scales[to]
    raise ValueError(f"{unit} does not convert to {to}")


def met(value: float, unit: str, goal: str) -> bool:
    """Whether ``value`` (in ``unit``) meets ``goal``."""
    op, limit, goal_unit = parse_goal(goal)
    return OPERATORS[op](convert(value, unit, goal_unit), limit)


def show(value: float, unit: str) -> str:
    """A value for the table: ratios as ``7.80x``, others to a precision fit for their size."""
    if unit == "x":
        return f"{value:.2f}x"
    digits = 0 if abs(value) >= 1000 else 1 if abs(value) >= 10 else 2
    return f"{value:,.{digits}f} {unit}"


def read_figures(lines: Iterable[str]) -> dict[str, dict]:
    """Figure records by name, from JSON lines; the last record of a name wins. A line that
    is not a JSON object (a torn write) is skipped."""
    figures: dict[str, dict] = {}
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "name" in record:
            figures[str(record["name"]).strip()] = record
    return figures


def _measured(record: dict | None) -> float | None:
    value = record.get("value") if record else None
    return float(value) if isinstance(value, int | float) else None


def row(goal: Goal, figures: dict[str, dict]) -> tuple[str, str, str, str, str]:
    """(figure, goal, measured, met, benchmark) of one goal: met is "yes" when every check
    holds, "no" when a measured one fails, "-" when none fails but one is not measured."""
    wanted = ", ".join(f"{c.goal} {c.words}".strip() for c in goal.checks)
    parts, verdicts, benches = [], [], []
    for check in goal.checks:
        record = figures.get(check.figure)
        value = _measured(record)
        if record is None or value is None:
            parts.append(f"{check.figure}: not measured")
            verdicts.append(None)
            continue
        benches.append(str(record.get("bench") or goal.bench))
        unit = str(record.get("unit", ""))
        try:
            verdicts.append(met(value, unit, check.goal))
            parts.append(check.shown.format(show(value, unit)))
        except ValueError as e:
            verdicts.append(False)
            parts.append(check.shown.format(f"{show(value, unit)} ({e})"))
    beside = []
    for label, name in goal.context:
        value = _measured(figures.get(name))
        if value is not None:
            beside.append(f"{label} {show(value, figures[name].get('unit', ''))}")
    measured = ", ".join(parts) if benches else "not measured"
    measured += f" ({', '.join(beside)})" if beside and benches else ""
    if False in verdicts:
        verdict = "no"
    elif None in verdicts:
        verdict = "-"
    else:
        verdict = "yes"
    bench = ", ".join(dict.fromkeys(benches)) or goal.bench
    return goal.figure, wanted, measured, verdict, bench


def table(figures: dict[str, dict], goals: Iterable[Goal] = GOALS) -> list[str]:
    """The goals' table as Markdown lines, columns padded to line up."""
    head = ("figure", "goal", "measured", "met", "benchmark")
    rows = [head, *(row(g, figures) for g in goals)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]

    def line(cells: Iterable[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return [line(rows[0]), line("-" * w for w in widths), *map(line, rows[1:])]


def main() -> int:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else FIGURES
    try:
        figures = read_figures(path.read_text().splitlines())
    except FileNotFoundError:
        figures = {}
    print(f"# the goals of issues 19 and 22, from {len(figures)} figures in {path}", flush=True)
    for text in table(figures):
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
