"""Read recorded bars (the ``../shared/data/bars`` layout) into ``Bar`` values.

Layout: ``DIR/<timeframe>/<SYMBOL>.csv.gz`` (or an uncompressed ``.csv``), columns
``timestamp,open,high,low,close,volume,...``, timestamps ISO-8601 UTC with ``Z`` marking the
bar's start, rows in ascending time. Plain ``csv`` + ``gzip``: no pandas, so it is fast
enough to replay every minute bar in seconds.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import cast

from strategies.api.model import Bar, Timeframe

SUFFIXES = (".csv.gz", ".csv")
REQUIRED_COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")


class BarFileError(ValueError):
    """A bar file that cannot be read (missing column, bad row)."""


def symbol_files(bars_dir: Path, timeframe: str) -> dict[str, Path]:
    """``{symbol: path}`` of every bar file of ``timeframe`` under ``bars_dir``, sorted."""
    folder = Path(bars_dir) / timeframe
    found: dict[str, Path] = {}
    if not folder.is_dir():
        return found
    for path in sorted(folder.iterdir()):
        for suffix in SUFFIXES:
            if path.name.endswith(suffix):
                found.setdefault(path.name[: -len(suffix)], path)
                break
    return found


def _open_text(path: Path) -> io.TextIOBase:
    if path.name.endswith(".gz"):
        return cast(io.TextIOBase, gzip.open(path, "rt", newline="", encoding="utf-8"))
    return cast(io.TextIOBase, path.open(newline="", encoding="utf-8"))


def iter_bars(path: Path, symbol: str, timeframe: str) -> Iterator[Bar]:
    """Yield the bars of one file in file order (ascending time)."""
    tf = cast(Timeframe, timeframe)
    with _open_text(path) as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            return
        try:
            idx = [header.index(col) for col in REQUIRED_COLUMNS]
        except ValueError as exc:
            raise BarFileError(f"{path}: header {header} lacks a required column") from exc
        i_t, i_o, i_h, i_l, i_c, i_v = idx
        for line_no, row in enumerate(reader, start=2):
            try:
                yield Bar(
                    symbol=symbol,
                    timeframe=tf,
                    t=datetime.fromisoformat(row[i_t]),
                    open=float(row[i_o]),
                    high=float(row[i_h]),
                    low=float(row[i_l]),
                    close=float(row[i_c]),
                    volume=float(row[i_v]),
                )
            except (ValueError, IndexError) as exc:
                raise BarFileError(f"{path}:{line_no}: bad row {row!r}: {exc}") from exc


def read_bars(path: Path, symbol: str, timeframe: str) -> list[Bar]:
    """All bars of one file, ascending."""
    return list(iter_bars(path, symbol, timeframe))
