"""Test helper: copies of the shared bars, raw or split-adjusted to the end of the data (as
a data vendor's adjusted history would be), written in the shared layout."""

from __future__ import annotations

import csv
import gzip
import shutil
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from magellan_core.corporate_actions import CorporateAction, SplitTable
from magellan_daemon.timefmt import NEW_YORK

PRICE_COLUMNS = ("open", "high", "low", "close", "vwap")


def raw_copy(src: Path, dst: Path, timeframe: str, symbols: Iterable[str]) -> None:
    """``src/<timeframe>/<SYMBOL>.csv.gz`` copied as they are to ``dst``."""
    (dst / timeframe).mkdir(parents=True, exist_ok=True)
    for symbol in symbols:
        name = f"{symbol}.csv.gz"
        shutil.copyfile(src / timeframe / name, dst / timeframe / name)


def adjusted_copy(
    src: Path,
    dst: Path,
    timeframe: str,
    symbols: Iterable[str],
    actions: Iterable[CorporateAction],
) -> None:
    """The files of ``symbols`` with every split applied to the bars before it: prices
    divided by the product of the later splits' ratios, volumes multiplied."""
    table = SplitTable(actions)
    (dst / timeframe).mkdir(parents=True, exist_ok=True)
    for symbol in symbols:
        name = f"{symbol}.csv.gz"
        with (
            gzip.open(src / timeframe / name, "rt", newline="") as source,
            gzip.open(dst / timeframe / name, "wt", newline="") as target,
        ):
            reader = csv.reader(source)
            writer = csv.writer(target, lineterminator="\n")
            header = next(reader)
            writer.writerow(header)
            prices = [header.index(c) for c in PRICE_COLUMNS if c in header]
            volume = header.index("volume")
            for row in reader:
                day = datetime.fromisoformat(row[0]).astimezone(NEW_YORK).date()
                factor = float(table.factor(symbol, day))
                if factor != 1:
                    for i in prices:
                        if row[i]:
                            row[i] = repr(float(row[i]) / factor)
                    row[volume] = repr(float(row[volume]) * factor)
                writer.writerow(row)
