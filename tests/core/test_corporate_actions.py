"""``corporate_actions``: the file's rows (every bad one names its line) and split factors."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from magellan_core.corporate_actions import (
    CorporateAction,
    CorporateActionsFileError,
    SplitTable,
    corporate_actions_path,
    dividend_multiplier,
    load_corporate_actions,
    split_factor,
)

HEADER = "symbol,type,ex_date,new_rate,old_rate,rate"
SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "corporate_actions.csv"


def write(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "corporate_actions.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_shared_file_loads_sorted() -> None:
    actions = load_corporate_actions(SHARED)
    assert [(a.symbol, a.ex_date.isoformat(), a.ratio) for a in actions] == [
        ("AAPL", "2020-08-31", 4),
        ("TSLA", "2020-08-31", 5),
        ("NVDA", "2021-07-20", 4),
        ("AMZN", "2022-06-06", 20),
        ("GOOGL", "2022-07-18", 20),
        ("TSLA", "2022-08-25", 3),
        ("NVDA", "2024-06-10", 10),
        ("WKHS", "2024-06-17", Decimal("0.05")),
    ]
    wkhs = actions[-1]
    assert wkhs.type == "reverse_split" and wkhs.is_split and wkhs.rate == 0


def test_dividend_row(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER, "SPY,cash_dividend,2024-06-21,,,1.7588", "")
    (div,) = load_corporate_actions(path)
    assert div == CorporateAction(
        "SPY", "cash_dividend", date(2024, 6, 21), Decimal(1), Decimal(1), Decimal("1.7588")
    )
    assert not div.is_split and div.ratio == 1


def test_blank_lines_and_spaces_are_tolerated(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER, "", " NVDA , forward_split , 2024-06-10 , 10 , 1 , ", "")
    (split,) = load_corporate_actions(path)
    assert split.symbol == "NVDA" and split.ratio == 10


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("NVDA,forward_split,2024-06-10,10,1", "expected 6 fields"),
        ("NVDA,forward_split,2024-06-10,10,1,,", "expected 6 fields"),
        (",forward_split,2024-06-10,10,1,", "symbol '' is not an upper-case ticker"),
        ("nvda,forward_split,2024-06-10,10,1,", "symbol 'nvda' is not an upper-case ticker"),
        ("NVDA,split,2024-06-10,10,1,", "type 'split' is not one of"),
        ("NVDA,forward_split,,10,1,", "ex_date '' is not an ISO date"),
        ("NVDA,forward_split,06/10/2024,10,1,", "ex_date '06/10/2024' is not an ISO date"),
        ("NVDA,forward_split,2024-02-30,10,1,", "ex_date '2024-02-30'"),
        ("NVDA,forward_split,2024-06-08,10,1,", "ex_date 2024-06-08 is a Saturday"),
        ("NVDA,forward_split,2024-06-10,,1,", "new_rate is empty"),
        ("NVDA,forward_split,2024-06-10,10,,", "old_rate is empty"),
        ("NVDA,forward_split,2024-06-10,ten,1,", "new_rate 'ten' is not a number"),
        ("NVDA,forward_split,2024-06-10,10,0,", "old_rate must be positive"),
        ("NVDA,forward_split,2024-06-10,-10,1,", "new_rate must be positive"),
        ("NVDA,forward_split,2024-06-10,inf,1,", "new_rate 'inf' is not a finite number"),
        ("NVDA,forward_split,2024-06-10,NaN,1,", "new_rate 'NaN' is not a finite number"),
        ("NVDA,forward_split,2024-06-10,1,1,", "forward_split needs new_rate > old_rate"),
        ("NVDA,forward_split,2024-06-10,1,10,", "forward_split needs new_rate > old_rate"),
        ("WKHS,reverse_split,2024-06-17,20,1,", "reverse_split needs new_rate < old_rate"),
        ("NVDA,forward_split,2024-06-10,10,1,0.5", "a forward_split has no rate"),
        ("NVDA,forward_split,2024-06-10,10,1,x", "rate 'x' is not a number"),
        ("SPY,cash_dividend,2024-06-21,,,", "rate is empty"),
        ("SPY,cash_dividend,2024-06-21,,,0", "rate must be positive"),
        ("SPY,cash_dividend,2024-06-21,,,-1", "rate must be positive"),
        ("SPY,cash_dividend,2024-06-21,1,1,1.5", "a cash_dividend has no new_rate or old_rate"),
    ],
)
def test_bad_row_names_its_line(tmp_path: Path, row: str, reason: str) -> None:
    path = write(tmp_path, HEADER, "AAPL,forward_split,2020-08-31,4,1,", row)
    with pytest.raises(CorporateActionsFileError) as caught:
        load_corporate_actions(path)
    assert caught.value.line == 3
    assert str(caught.value).startswith(f"{path}: line 3: ")
    assert reason in str(caught.value)


def test_duplicate_row_names_both_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEADER,
        "NVDA,forward_split,2024-06-10,10,1,",
        "AAPL,forward_split,2020-08-31,4,1,",
        "NVDA,forward_split,2024-06-10,10,1,",
    )
    with pytest.raises(
        CorporateActionsFileError, match=r"line 4: NVDA has a second split .*line 2"
    ):
        load_corporate_actions(path)


def test_two_splits_same_day_are_ambiguous(tmp_path: Path) -> None:
    path = write(
        tmp_path, HEADER, "X,forward_split,2024-06-10,2,1,", "X,reverse_split,2024-06-10,1,2,"
    )
    with pytest.raises(CorporateActionsFileError, match="line 3: X has a second split"):
        load_corporate_actions(path)


@pytest.mark.parametrize(
    "header",
    [
        "symbol,type,ex_date,new_rate,old_rate",
        "symbol,type,date,new_rate,old_rate,rate",
        "type,symbol,ex_date,new_rate,old_rate,rate",
        "NVDA,forward_split,2024-06-10,10,1,",
    ],
)
def test_bad_header_is_line_1(tmp_path: Path, header: str) -> None:
    path = write(tmp_path, header, "NVDA,forward_split,2024-06-10,10,1,")
    with pytest.raises(CorporateActionsFileError, match=r": line 1: header must be symbol,type"):
        load_corporate_actions(path)


def test_empty_and_missing_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(CorporateActionsFileError, match="line 1: empty file"):
        load_corporate_actions(empty)
    with pytest.raises(CorporateActionsFileError, match=r"nowhere\.csv: cannot read"):
        load_corporate_actions(tmp_path / "nowhere.csv")
    assert load_corporate_actions(write(tmp_path, HEADER)) == ()


def test_path_beside_bars_or_explicit(tmp_path: Path) -> None:
    bars = tmp_path / "bars"
    bars.mkdir()
    assert corporate_actions_path(bars, None) is None
    beside = write(tmp_path, HEADER)
    assert corporate_actions_path(bars, None) == beside.resolve()
    explicit = tmp_path / "other.csv"
    assert corporate_actions_path(bars, explicit) == explicit


def test_split_factor_and_table_agree() -> None:
    actions = load_corporate_actions(SHARED)
    table = SplitTable(actions)
    cases = [
        ("NVDA", date(2021, 7, 19), None, 40),
        ("NVDA", date(2021, 7, 20), None, 10),
        ("NVDA", date(2024, 6, 7), None, 10),
        ("NVDA", date(2024, 6, 10), None, 1),
        ("NVDA", date(2020, 1, 2), date(2024, 6, 9), 4),
        ("NVDA", date(2020, 1, 2), date(2024, 6, 10), 40),
        ("NVDA", date(2024, 6, 7), date(2024, 6, 7), 1),
        ("TSLA", date(2020, 8, 28), None, 15),
        ("WKHS", date(2024, 6, 14), None, Decimal("0.05")),
        ("SPY", date(2020, 1, 2), None, 1),
    ]
    for symbol, day, as_of, want in cases:
        assert split_factor(actions, symbol, day, as_of) == want, (symbol, day, as_of)
        assert table.factor(symbol, day, as_of) == want, (symbol, day, as_of)
    assert table.ratio_on("NVDA", date(2024, 6, 10)) == 10
    assert table.ratio_on("NVDA", date(2024, 6, 11)) == 1
    assert table.ex_dates("TSLA") == (date(2020, 8, 31), date(2022, 8, 25))
    assert table.symbols() == {"AAPL", "TSLA", "NVDA", "AMZN", "GOOGL", "WKHS"}


def test_dividend_multiplier() -> None:
    assert dividend_multiplier(Decimal("1"), Decimal("100")) == Decimal("0.99")
    assert dividend_multiplier(Decimal("1"), Decimal("0")) == 1
