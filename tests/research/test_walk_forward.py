"""Walk-forward windows, the stitched out-of-sample curve and the efficiency: pure arithmetic."""

from __future__ import annotations

from datetime import date

import pytest

from magellan_daemon.research.walk_forward import (
    WalkForwardError,
    Window,
    add_months,
    efficiency,
    parse,
    stitch,
    windows,
)


def test_windows_roll_by_the_test_length_and_stop_before_the_end() -> None:
    # Checked by hand: 3 months of train, then 1 of test; the next window one month later.
    # The range ends 2024-06-20, so a window testing June (to 06-30) is not made.
    assert windows(date(2024, 1, 1), date(2024, 6, 20), 3, 1) == [
        Window(1, date(2024, 1, 1), date(2024, 3, 31), date(2024, 4, 1), date(2024, 4, 30)),
        Window(2, date(2024, 2, 1), date(2024, 4, 30), date(2024, 5, 1), date(2024, 5, 31)),
    ]


def test_a_test_of_two_months_moves_the_windows_by_two() -> None:
    assert windows(date(2023, 11, 15), date(2024, 7, 14), 2, 2) == [
        Window(1, date(2023, 11, 15), date(2024, 1, 14), date(2024, 1, 15), date(2024, 3, 14)),
        Window(2, date(2024, 1, 15), date(2024, 3, 14), date(2024, 3, 15), date(2024, 5, 14)),
        Window(3, date(2024, 3, 15), date(2024, 5, 14), date(2024, 5, 15), date(2024, 7, 14)),
    ]


def test_month_ends_clamp_to_the_shorter_month() -> None:
    assert add_months(date(2024, 1, 31), 1) == date(2024, 2, 29)
    assert add_months(date(2023, 12, 31), 2) == date(2024, 2, 29)
    assert add_months(date(2024, 11, 30), 3) == date(2025, 2, 28)


def test_a_range_too_short_for_one_window_says_what_end_it_needs() -> None:
    with pytest.raises(WalkForwardError, match=r"too short .* need --end 2024-04-30 or later"):
        windows(date(2024, 1, 1), date(2024, 4, 29), 3, 1)


@pytest.mark.parametrize("spec", ["3:1", "3M", "0M:1M", "3M:0M", "3W:1W", "M:M", "3M:1M:1M"])
def test_a_malformed_spec_is_refused(spec: str) -> None:
    with pytest.raises(WalkForwardError, match="expected TRAIN:TEST in months"):
        parse(spec)


def test_the_spec_reads_train_then_test_months() -> None:
    assert parse("12M:3M") == (12, 3)


def test_stitching_chains_each_windows_return_from_the_same_cash() -> None:
    first = [(date(2024, 4, 1), 110.0), (date(2024, 4, 2), 120.0)]  # +20%
    second = [(date(2024, 5, 1), 90.0), (date(2024, 5, 2), 100.0)]  # 0%, via -10%
    assert stitch(100.0, [first, second]) == [
        (date(2024, 4, 1), 110.0),
        (date(2024, 4, 2), 120.0),
        (date(2024, 5, 1), pytest.approx(108.0)),
        (date(2024, 5, 2), pytest.approx(120.0)),
    ]


def test_efficiency_is_out_of_sample_over_mean_in_sample_annualised_return() -> None:
    assert efficiency(10.0, [20.0, 30.0]) == pytest.approx(0.4)
    assert efficiency(-5.0, [10.0]) == pytest.approx(-0.5)
    assert efficiency(10.0, [-20.0, 10.0]) is None  # a ratio to a loss says nothing
    assert efficiency(None, [10.0]) is None
    assert efficiency(10.0, []) is None
