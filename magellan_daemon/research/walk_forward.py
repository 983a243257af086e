"""Walk-forward validation: the range cut into rolling windows of train months then test months.

Window ``k`` (from 0) trains on ``[start + k*T, start + k*T + R)`` and tests on the ``T``
months right after it (``--walk-forward R:T``, in calendar months from ``--start``); windows
whose test would end after ``--end`` are not made. In each window the sweep picks the best
setting on train and runs it on test; the test windows' equity, each run from the same
starting cash, is chained into one out-of-sample curve (each day's value is the cash times
the product of the test windows' returns so far).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

SPEC = re.compile(r"^(\d+)M:(\d+)M$")


class WalkForwardError(ValueError):
    """A ``--walk-forward`` that cannot be used (its format, or a range too short)."""


@dataclass(frozen=True, slots=True)
class Window:
    """One train range and the test range right after it (New York dates, inclusive)."""

    number: int  # from 1
    train_start: date
    train_end: date
    test_start: date
    test_end: date


def parse(spec: str) -> tuple[int, int]:
    """``"3M:1M"`` -> (3, 1): train months, test months."""
    match = SPEC.match(spec)
    if match is None or int(match[1]) < 1 or int(match[2]) < 1:
        raise WalkForwardError(
            f"--walk-forward {spec!r}: expected TRAIN:TEST in months, e.g. 3M:1M"
        )
    return int(match[1]), int(match[2])


def add_months(day: date, months: int) -> date:
    """The same day ``months`` later (the month's last day when it has no such day)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def windows(start: date, end: date, train_months: int, test_months: int) -> list[Window]:
    """Every whole window in ``start``..``end``; ``WalkForwardError`` when none fits."""
    out = []
    while True:
        k = len(out) * test_months
        test_start = add_months(start, k + train_months)
        test_end = add_months(start, k + train_months + test_months) - timedelta(days=1)
        if test_end > end:
            break
        train_start = add_months(start, k)
        out.append(
            Window(len(out) + 1, train_start, test_start - timedelta(days=1), test_start, test_end)
        )
    if not out:
        need = add_months(start, train_months + test_months) - timedelta(days=1)
        raise WalkForwardError(
            f"--walk-forward {train_months}M:{test_months}M: the range {start}..{end} is too "
            f"short for one window ({train_months} months of train and {test_months} of test "
            f"need --end {need} or later)"
        )
    return out


def stitch(cash: float, tests: Sequence[Sequence[tuple[date, float]]]) -> list[tuple[date, float]]:
    """The test windows' equity chained into one curve starting at ``cash``."""
    out: list[tuple[date, float]] = []
    carried = cash
    for equity in tests:
        for day, value in equity:
            out.append((day, carried * value / cash))
        if equity:
            carried = carried * equity[-1][1] / cash
    return out


def efficiency(out_of_sample_cagr: float | None, in_sample_cagrs: Sequence[float]) -> float | None:
    """Annualised out-of-sample return over the mean annualised in-sample return of the
    chosen settings; None when either is unknown or the in-sample one is not positive (a
    ratio to a loss says nothing)."""
    if out_of_sample_cagr is None or not in_sample_cagrs:
        return None
    in_sample = sum(in_sample_cagrs) / len(in_sample_cagrs)
    return out_of_sample_cagr / in_sample if in_sample > 0 else None
