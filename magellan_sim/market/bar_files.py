"""One bar file (``SYMBOL.csv.gz`` of the shared data layout) as numpy columns, parsed once
and kept parsed between runs.

Parsing a year of minute bars costs seconds (gzip, then text to numbers); reading the same
columns back from an uncompressed ``.npz`` costs milliseconds. The parsed form is cached in
``$MAGELLAN_CACHE_DIR`` (default ``~/.cache/magellan``) under ``bars/``, named by the file's
absolute path, size and modification time: a changed file is parsed again, and nothing is
ever written beside the data. A cache that cannot be written (read-only home) is skipped.

Columns: ``t`` (bar start, seconds since the epoch, UTC), ``open``/``high``/``low``/
``close``/``volume``/``vwap`` (float64, NaN vwap when unknown) and ``trade_count`` (int64,
-1 when unknown). pandas' parser reads each number as Python's ``float`` does (checked on
the shared bars by ``tests/sim/test_bar_files.py``), so bars built from these columns equal
those read row by row.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

COLUMNS = ("t", "open", "high", "low", "close", "volume", "trade_count", "vwap")
CACHE_VERSION = 1  # bump when the parsed form changes

Columns = dict[str, np.ndarray]
# Files whose columns this process keeps in memory (``hold``), by absolute path.
_held: dict[str, Columns] = {}


def cache_dir() -> Path:
    """Where parsed bar files are kept."""
    root = os.environ.get("MAGELLAN_CACHE_DIR")
    return (Path(root) if root else Path.home() / ".cache" / "magellan") / "bars"


def _cache_path(file: Path) -> Path:
    stat = file.stat()
    key = f"{CACHE_VERSION}|{file.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    return cache_dir() / f"{file.name.split('.')[0]}-{digest}.npz"


def parse_columns(file: Path) -> dict[str, np.ndarray]:
    """The columns of ``file``, parsed from its text (no cache)."""
    frame = pd.read_csv(file)
    stamps = pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601")
    n = len(frame)
    missing = np.full(n, np.nan)
    return {
        "t": stamps.dt.as_unit("s").astype("int64").to_numpy(),
        "open": frame["open"].to_numpy(dtype=np.float64),
        "high": frame["high"].to_numpy(dtype=np.float64),
        "low": frame["low"].to_numpy(dtype=np.float64),
        "close": frame["close"].to_numpy(dtype=np.float64),
        "volume": frame["volume"].to_numpy(dtype=np.float64),
        "trade_count": (
            frame["trade_count"].fillna(-1).to_numpy(dtype=np.int64)
            if "trade_count" in frame
            else np.full(n, -1, dtype=np.int64)
        ),
        "vwap": (
            frame["vwap"].to_numpy(dtype=np.float64, na_value=np.nan)
            if "vwap" in frame
            else missing
        ),
    }


def hold(columns_by_file: Mapping[str, Columns]) -> None:
    """Keep these files' columns (by absolute path, as ``load`` returns them) in this
    process's memory: ``read_columns`` then hands them out without touching the disk. A
    sweep's worker runs many backtests on the same bars: they are loaded once per worker
    (or mapped from Ray's object store), never read again per trial. The arrays may be
    read-only (shared memory): nothing writes into bar columns."""
    _held.update(columns_by_file)


def load(files: Iterable[Path]) -> dict[str, Columns]:
    """``read_columns`` of each file, by absolute path (what ``hold`` takes)."""
    return {str(Path(f).resolve()): read_columns(f) for f in files}


def read_columns(file: Path) -> Columns:
    """The columns of ``file``: held in memory (``hold``), else from the cache when it holds
    this version of the file, else parsed and cached."""
    file = Path(file)
    if _held:
        found = _held.get(str(file.resolve()))
        if found is not None:
            return dict(found)  # the caller's own dict over the shared arrays
    try:
        cached = _cache_path(file)
    except OSError:
        return parse_columns(file)
    if cached.is_file():
        try:
            with np.load(cached) as data:
                return {name: data[name] for name in COLUMNS}
        except (OSError, ValueError, KeyError):
            log.debug("bar cache %s unreadable: parsing %s again", cached, file)
    columns = parse_columns(file)
    _store(cached, columns)
    return columns


def _store(path: Path, columns: dict[str, np.ndarray]) -> None:
    """Write atomically (a concurrent reader sees the old file or the whole new one)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                np.savez(handle, **columns)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        log.debug("bar cache not written (%s): %s", path, exc)
