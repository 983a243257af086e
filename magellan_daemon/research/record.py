"""What a sweep keeps in ``--out`` so that nothing is lost or run twice: ``trials.csv``, one row
per finished trial, and ``study.json``, what the study is (to refuse mixing two in one folder).

A row is written with one ``write`` on a file opened for appending, then synced: a sweep
killed at any moment leaves whole rows and at most a last partial one, which ``TrialsFile``
drops when it opens the file again (rewriting it whole, atomically). The file is the record
of what finished: a trial with a row is never run again, one without is.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from magellan_daemon.backtest.metrics import METRIC_KEYS
from magellan_daemon.research.space import Parameter, format_value
from magellan_daemon.research.trial import TrialResult

# The columns the issue names first, in its order; then the backtest's other metrics.
LEADING_METRICS = (
    "total_return_pct",
    "cagr_pct",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown_pct",
    "profit_factor",
    "expectancy_usd",
    "sqn",
    "win_rate",
    "trades",
    "exposure",
)
METRIC_COLUMNS = LEADING_METRICS + tuple(k for k in METRIC_KEYS if k not in LEADING_METRICS)
INTEGER_METRICS = frozenset({"trades", "max_consecutive_losses"})
TEXT_METRICS = frozenset({"max_drawdown_start", "max_drawdown_end"})
STATUSES = ("ok", "failed", "skipped")


class StudyMismatch(Exception):
    """``--out`` already holds another study."""


def columns(parameters: tuple[Parameter, ...]) -> list[str]:
    """``trials.csv``'s header."""
    return [
        "trial",
        "status",
        "seconds",
        *(f"param.{p.name}" for p in parameters),
        *METRIC_COLUMNS,
        "error",
    ]


class TrialsFile:
    """``trials.csv``: read what finished, append each new result as one whole row."""

    def __init__(self, path: Path, parameters: tuple[Parameter, ...]) -> None:
        self.path = path
        self._parameters = parameters
        self._header = columns(parameters)

    def open(self) -> dict[int, TrialResult]:
        """The finished trials by number; a partial or repeated row is dropped (the file
        rewritten without it), a missing file started with its header."""
        if not self.path.exists():
            self._replace([])
            return {}
        lines = self.path.read_text().splitlines(keepends=True)
        if not lines or lines[0] != self._line(self._header):
            raise StudyMismatch(f"{self.path} has other columns: another study")
        kept: dict[int, TrialResult] = {}
        rows: list[str] = []
        for line in lines[1:]:
            result = self._parse(line)
            if result is not None and result.number not in kept:
                kept[result.number] = result
                rows.append(line)
        if len(rows) != len(lines) - 1:
            self._replace(rows)
        return kept

    def append(self, result: TrialResult) -> None:
        """One row, whole, synced before this returns."""
        data = self._line(self._cells(result)).encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    def _cells(self, result: TrialResult) -> list[str]:
        return [
            str(result.number),
            result.status,
            f"{result.seconds:.3f}",
            *(format_value(result.values.get(p.name)) for p in self._parameters),
            *(format_value(result.metrics.get(k)) for k in METRIC_COLUMNS),
            result.error,
        ]

    def _parse(self, line: str) -> TrialResult | None:
        """A whole row read back; None for a partial or malformed one."""
        if not line.endswith("\n"):
            return None
        try:
            cells = next(csv.reader([line]))
            if len(cells) != len(self._header):
                return None
            number, status, seconds = int(cells[0]), cells[1], float(cells[2])
            if status not in STATUSES:
                return None
            n = len(self._parameters)
            values = {
                p.name: p.parse(text)
                for p, text in zip(self._parameters, cells[3 : 3 + n], strict=True)
                if text != ""
            }
            metric_cells = cells[3 + n : 3 + n + len(METRIC_COLUMNS)]
            metrics = {
                k: _metric(k, text) for k, text in zip(METRIC_COLUMNS, metric_cells, strict=True)
            }
        except (ValueError, csv.Error):
            return None
        return TrialResult(
            number,
            status,  # type: ignore[arg-type]  # checked against STATUSES above
            seconds,
            values,
            metrics=metrics if status == "ok" else {},
            error=cells[-1],
        )

    @staticmethod
    def _line(cells: list[str]) -> str:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow(cells)
        return buffer.getvalue()

    def _replace(self, rows: list[str]) -> None:
        write_atomically(self.path, self._line(self._header) + "".join(rows))


def _metric(key: str, text: str) -> Any:
    if text == "":
        return None
    if key in TEXT_METRICS:
        return text
    return int(text) if key in INTEGER_METRICS else float(text)


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``: a reader (or a kill) sees the old file or the new."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def claim(out: Path, identity: dict[str, Any]) -> bool:
    """Make ``out`` this study's folder, for this process alone until it ends: True if it
    already was (a resume), False if new; ``StudyMismatch`` naming what differs if it holds
    another study, or if another sweep is running in it (two would record trials twice)."""
    out.mkdir(parents=True, exist_ok=True)
    _lock(out)
    path = out / "study.json"
    if path.exists():
        try:
            held = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise StudyMismatch(f"{path} is unreadable ({exc}): use another --out") from None
        if held != identity:
            differs = sorted(k for k in set(held) | set(identity) if held.get(k) != identity.get(k))
            raise StudyMismatch(
                f"--out {out} holds another study ({', '.join(differs)} differ): "
                "use another --out, or remove it to start again"
            )
        return True
    if (out / "trials.csv").exists():
        raise StudyMismatch(f"--out {out} holds a trials.csv but no study.json: use another --out")
    write_atomically(path, json.dumps(identity, indent=2, sort_keys=True) + "\n")
    return False


_locks: dict[str, int] = {}  # folder -> the open, locked ``.lock`` of this process


def _lock(out: Path) -> None:
    """An exclusive lock on ``out/.lock`` (once per process): released by ``release``, or by
    the kernel when this process ends however it ends (a SIGKILLed sweep leaves no stale
    lock)."""
    key = str(out.resolve())
    if key in _locks:
        return
    fd = os.open(out / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StudyMismatch(f"--out {out} is in use by another magellan sweep") from None
    _locks[key] = fd


def release(out: Path) -> None:
    """Let go of ``out`` (the sweep in it ended)."""
    fd = _locks.pop(str(out.resolve()), None)
    if fd is not None:
        os.close(fd)
