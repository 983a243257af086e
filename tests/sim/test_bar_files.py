"""Bar files as columns: the same numbers as reading the rows one by one, parsed once and
then read from the cache, parsed again when the file changes."""

from __future__ import annotations

import gzip
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from magellan_daemon.backtest.bars_csv import iter_bars
from magellan_sim.market import bar_files


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("MAGELLAN_CACHE_DIR", str(root))
    return root / "bars"


def test_columns_equal_the_rows_read_one_by_one(bars_dir: Path, cache: Path) -> None:
    file = bars_dir / "1Min" / "MULN.csv.gz"
    cols = bar_files.read_columns(file)
    bars = list(iter_bars(file, "MULN", "1Min"))
    assert len(bars) == len(cols["t"])
    assert [datetime.fromtimestamp(t, UTC) for t in cols["t"].tolist()] == [b.t for b in bars]
    for name in ("open", "high", "low", "close", "volume"):
        assert cols[name].tolist() == [getattr(b, name) for b in bars], name


def test_parsed_once_then_cached_and_parsed_again_when_the_file_changes(
    bars_dir: Path, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = tmp_path / "WKHS.csv.gz"
    shutil.copy(bars_dir / "1Day" / "SPY.csv.gz", file)
    first = bar_files.read_columns(file)
    assert len(list(cache.glob("*.npz"))) == 1

    def no_parse(_: Path) -> dict[str, np.ndarray]:
        raise AssertionError("parsed again")

    with monkeypatch.context() as m:
        m.setattr(bar_files, "parse_columns", no_parse)
        again = bar_files.read_columns(file)
    for name in bar_files.COLUMNS:
        np.testing.assert_array_equal(again[name], first[name])
    text = gzip.decompress(file.read_bytes()).decode().splitlines()
    file.write_bytes(gzip.compress("\n".join(text[:10]).encode() + b"\n"))
    os.utime(file, ns=(1, 1))
    changed = bar_files.read_columns(file)
    assert len(changed["t"]) == 9


def test_an_unwritable_cache_only_costs_the_parse(
    bars_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("MAGELLAN_CACHE_DIR", str(blocker))
    cols = bar_files.read_columns(bars_dir / "1Day" / "SPY.csv.gz")
    assert len(cols["t"]) > 1000
