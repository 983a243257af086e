"""Shared by the benchmarks: the machine line, medians, RSS, deep object sizes.

Every benchmark prints one line per figure: ``name: value unit (median of N; details)``,
and appends it as one JSON line to ``FIGURES`` (bench/out/figures.jsonl, emptied by ``make
bench`` first), where bench/goals.py reads the run's figures to print them against their
goals. Speed and memory are measured here, never asserted in tests.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SHARED_BARS = Path(os.environ.get("SHARED_BARS", REPO.parent / "shared" / "data" / "bars"))
# Each report() appends here; `make bench` empties it first, bench/goals.py reads it.
FIGURES = REPO / "bench" / "out" / "figures.jsonl"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def machine() -> str:
    """One line: CPU model, cores, memory, Python."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kb / 1024 / 1024:.0f} GB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return (
        f"{model}, {os.cpu_count()} cores{memory}, Python {platform.python_version()} "
        f"({platform.python_implementation()}), {platform.system()} {platform.release()}"
    )


def median(values: Iterable[float]) -> float:
    """The median (of several runs)."""
    return statistics.median(list(values))


def percentile(values: list[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def rss_bytes(pid: int | None = None) -> int:
    """Resident set size of a process (this one by default), from /proc."""
    status = Path(f"/proc/{pid or 'self'}/status").read_text()
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc status")


def deep_size(obj: Any, seen: set[int] | None = None) -> int:
    """Bytes of ``obj`` and everything it references (slots, dicts, sequences), once each;
    shared immutable singletons (None, small ints, interned strings) count where met."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    size = sys.getsizeof(obj)
    if isinstance(obj, dict):
        size += sum(deep_size(k, seen) + deep_size(v, seen) for k, v in obj.items())
    elif isinstance(obj, list | tuple | set | frozenset):
        size += sum(deep_size(v, seen) for v in obj)
    else:
        for name in getattr(type(obj), "__slots__", ()):
            if hasattr(obj, name):
                size += deep_size(getattr(obj, name), seen)
        if hasattr(obj, "__dict__"):
            size += deep_size(vars(obj), seen)
    return size


def report(name: str, value: float, unit: str, detail: str) -> None:
    """Print one figure line and append it to ``FIGURES`` as one JSON line: the name
    (without the indent that marks a breakdown line), the value (null when not a finite
    number), the unit, the details and the benchmark (the running script's name)."""
    print(f"{name}: {value:,.3f} {unit} ({detail})", flush=True)
    record = {
        "name": name.strip(),
        "value": value if math.isfinite(value) else None,
        "unit": unit,
        "details": detail,
        "bench": Path(sys.argv[0]).stem,
    }
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    with FIGURES.open("a") as f:
        f.write(json.dumps(record) + "\n")
