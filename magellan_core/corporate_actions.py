"""Corporate actions (splits and cash dividends) and the price adjustment they imply.

The offline source is ``corporate_actions.csv`` with the columns
``symbol,type,ex_date,new_rate,old_rate,rate``, in the shape of Alpaca's corporate-actions
API: ``type`` is ``forward_split``, ``reverse_split`` or ``cash_dividend``; a 10-for-1 split
is ``new_rate=10, old_rate=1``, a 1-for-20 reverse split ``new_rate=1, old_rate=20``;
``rate`` is the cash per share of a dividend. ``ex_date`` is the New York date of the first
session that trades at the new price scale.

The simulator imports this module, so it uses the standard library only.

Adjustment: a raw price of a bar dated before a split's ex-date is divided by the split's
ratio (``new_rate / old_rate``) and its volume multiplied by it; ``split_factor`` is the
product of the ratios that apply to one bar.
"""

from __future__ import annotations

import bisect
import csv
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Literal, get_args

ActionType = Literal["forward_split", "reverse_split", "cash_dividend"]
ACTION_TYPES: tuple[str, ...] = get_args(ActionType)
COLUMNS = ("symbol", "type", "ex_date", "new_rate", "old_rate", "rate")
FILE_NAME = "corporate_actions.csv"

ONE = Decimal(1)
ZERO = Decimal(0)
# Upper-case tickers with the class separators Alpaca uses (BRK.B, BF/B).
_SYMBOL = re.compile(r"[A-Z][A-Z0-9]*(?:[./-][A-Z0-9]+)?")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True, slots=True)
class CorporateAction:
    """One split or cash dividend of one symbol.

    For a dividend ``new_rate`` and ``old_rate`` are 1 (its ``ratio`` is 1: it does not
    change the share count); for a split ``rate`` is 0.
    """

    symbol: str
    type: ActionType
    ex_date: date
    new_rate: Decimal
    old_rate: Decimal
    rate: Decimal

    @property
    def is_split(self) -> bool:
        """True for forward and reverse splits."""
        return self.type != "cash_dividend"

    @property
    def ratio(self) -> Decimal:
        """``new_rate / old_rate``: shares multiply by it, prices divide by it."""
        return self.new_rate / self.old_rate


class CorporateActionsFileError(ValueError):
    """A corporate-actions file that cannot be used; names the file and the line.

    ``str(err)`` is ``"<file>: line <n>: <reason>"`` (or ``"<file>: <reason>"`` when the
    file itself cannot be read); the CLIs print it and exit 2.
    """

    def __init__(self, file: str | Path, line: int | None, reason: str) -> None:
        self.file = str(file)
        self.line = line
        self.reason = reason
        where = f"{self.file}: line {line}" if line is not None else self.file
        super().__init__(f"{where}: {reason}")


def corporate_actions_path(bars_dir: Path, explicit: Path | None) -> Path | None:
    """The file to read: ``explicit`` if given, else ``bars_dir/../corporate_actions.csv``
    when it exists, else None (no corporate actions)."""
    if explicit is not None:
        return explicit
    beside = Path(bars_dir).resolve().parent / FILE_NAME
    return beside if beside.is_file() else None


def load_corporate_actions(path: Path) -> tuple[CorporateAction, ...]:
    """Every row of the file, validated, sorted by ``(ex_date, symbol)``.

    Raises ``CorporateActionsFileError`` naming the first bad line. Blank lines are skipped.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CorporateActionsFileError(path, None, f"cannot read: {exc}") from exc
    rows = csv.reader(text.splitlines())
    header = next(rows, None)
    if header is None:
        raise CorporateActionsFileError(path, 1, f"empty file: expected the header {_columns()}")
    if tuple(cell.strip() for cell in header) != COLUMNS:
        raise CorporateActionsFileError(path, 1, f"header must be {_columns()}, not {header!r}")
    actions: list[CorporateAction] = []
    seen: dict[tuple[str, str, date], int] = {}
    for line, row in enumerate(rows, start=2):
        if not row or all(not cell.strip() for cell in row):
            continue
        try:
            action = parse_row(row)
        except ValueError as exc:
            raise CorporateActionsFileError(path, line, str(exc)) from None
        kind = "split" if action.is_split else "cash_dividend"
        key = (action.symbol, kind, action.ex_date)
        if key in seen:
            raise CorporateActionsFileError(
                path,
                line,
                f"{action.symbol} has a second {kind} on {action.ex_date} "
                f"(first on line {seen[key]})",
            )
        seen[key] = line
        actions.append(action)
    actions.sort(key=lambda a: (a.ex_date, a.symbol, a.type))
    return tuple(actions)


def parse_row(row: list[str]) -> CorporateAction:
    """One data row as a ``CorporateAction``; ``ValueError`` says what is wrong with it."""
    if len(row) != len(COLUMNS):
        raise ValueError(f"expected {len(COLUMNS)} fields ({_columns()}), got {len(row)}")
    symbol, kind, ex_date, new_rate, old_rate, rate = (cell.strip() for cell in row)
    if not _SYMBOL.fullmatch(symbol):
        raise ValueError(f"symbol {symbol!r} is not an upper-case ticker")
    if kind not in ACTION_TYPES:
        raise ValueError(f"type {kind!r} is not one of {', '.join(ACTION_TYPES)}")
    day = _parse_date(ex_date)
    if kind == "cash_dividend":
        if new_rate or old_rate:
            raise ValueError("a cash_dividend has no new_rate or old_rate (leave them empty)")
        return CorporateAction(symbol, "cash_dividend", day, ONE, ONE, _positive("rate", rate))
    new = _positive("new_rate", new_rate)
    old = _positive("old_rate", old_rate)
    if rate and _decimal("rate", rate) != ZERO:
        raise ValueError(f"a {kind} has no rate (leave it empty or 0), got {rate!r}")
    if kind == "forward_split" and not new > old:
        raise ValueError(f"a forward_split needs new_rate > old_rate, got {new}/{old}")
    if kind == "reverse_split" and not new < old:
        raise ValueError(f"a reverse_split needs new_rate < old_rate, got {new}/{old}")
    return CorporateAction(symbol, kind, day, new, old, ZERO)  # type: ignore[arg-type]


def _parse_date(text: str) -> date:
    if not _ISO_DATE.fullmatch(text):
        raise ValueError(f"ex_date {text!r} is not an ISO date (YYYY-MM-DD)")
    try:
        day = date.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"ex_date {text!r}: {exc}") from None
    if day.weekday() >= 5:
        raise ValueError(f"ex_date {text} is a {day.strftime('%A')}, not a trading day")
    return day


def _decimal(name: str, text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{name} {text!r} is not a number") from None
    if not value.is_finite():
        raise ValueError(f"{name} {text!r} is not a finite number")
    return value


def _positive(name: str, text: str) -> Decimal:
    if not text:
        raise ValueError(f"{name} is empty")
    value = _decimal(name, text)
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {text}")
    return value


def _columns() -> str:
    return ",".join(COLUMNS)


def splits_of(actions: Iterable[CorporateAction], symbol: str) -> list[CorporateAction]:
    """The symbol's splits, by ex-date."""
    return sorted((a for a in actions if a.symbol == symbol and a.is_split), key=_ex_date)


def dividends_of(actions: Iterable[CorporateAction], symbol: str) -> list[CorporateAction]:
    """The symbol's cash dividends, by ex-date."""
    return sorted((a for a in actions if a.symbol == symbol and not a.is_split), key=_ex_date)


def _ex_date(action: CorporateAction) -> date:
    return action.ex_date


def split_factor(
    actions: Iterable[CorporateAction], symbol: str, bar_date: date, as_of: date | None = None
) -> Decimal:
    """The product of the ratios of ``symbol``'s splits with ``bar_date < ex_date`` (and
    ``ex_date <= as_of`` when given: the history as it looked on ``as_of``).

    A raw price of the bar dated ``bar_date`` (New York date) is divided by it to be on the
    later scale; a volume is multiplied by it.
    """
    factor = ONE
    for action in actions:
        if (
            action.is_split
            and action.symbol == symbol
            and action.ex_date > bar_date
            and (as_of is None or action.ex_date <= as_of)
        ):
            factor *= action.ratio
    return factor


class SplitTable:
    """``split_factor`` for many bars: the splits indexed by symbol, looked up by bisection."""

    __slots__ = ("_days", "_suffix")

    def __init__(self, actions: Iterable[CorporateAction]) -> None:
        by_symbol: dict[str, list[CorporateAction]] = {}
        for action in actions:
            if action.is_split:
                by_symbol.setdefault(action.symbol, []).append(action)
        self._days: dict[str, list[date]] = {}
        # _suffix[s][i]: product of the ratios of the splits i.. (ex-date order); [n] is 1.
        self._suffix: dict[str, list[Decimal]] = {}
        for symbol, splits in by_symbol.items():
            splits.sort(key=_ex_date)
            self._days[symbol] = [s.ex_date for s in splits]
            suffix = [ONE]
            for split in reversed(splits):
                suffix.append(suffix[-1] * split.ratio)
            self._suffix[symbol] = suffix[::-1]

    def __bool__(self) -> bool:
        return bool(self._days)

    def symbols(self) -> frozenset[str]:
        """Symbols with at least one split."""
        return frozenset(self._days)

    def ex_dates(self, symbol: str) -> tuple[date, ...]:
        """The symbol's split ex-dates, ascending."""
        return tuple(self._days.get(symbol, ()))

    def factor(self, symbol: str, bar_date: date, as_of: date | None = None) -> Decimal:
        """As ``split_factor(actions, symbol, bar_date, as_of)``."""
        days = self._days.get(symbol)
        if not days:
            return ONE
        suffix = self._suffix[symbol]
        first = bisect.bisect_right(days, bar_date)  # first split with ex_date > bar_date
        stop = len(days) if as_of is None else bisect.bisect_right(days, as_of)
        if stop <= first:
            return ONE
        return suffix[first] / suffix[stop]

    def ratio_on(self, symbol: str, day: date) -> Decimal:
        """The ratio of the symbol's splits whose ex-date is ``day`` (1 when none)."""
        days = self._days.get(symbol)
        if not days:
            return ONE
        lo = bisect.bisect_left(days, day)
        hi = bisect.bisect_right(days, day)
        suffix = self._suffix[symbol]
        return suffix[lo] / suffix[hi] if hi > lo else ONE


def dividend_multiplier(rate: Decimal, previous_close: Decimal) -> Decimal:
    """Alpaca's dividend adjustment: prices before the ex-date are multiplied by
    ``1 - rate / previous_close`` (the close of the session before the ex-date)."""
    if previous_close <= 0 or rate >= previous_close:
        return ONE
    return (previous_close - rate) / previous_close
