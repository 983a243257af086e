"""The space file of ``magellan sweep``: which parameters of a strategy vary, over which values.

One TOML table per strategy, one key per parameter of that strategy's own parameter model
(nested models and tables by dotted path: ``[bear_trap.risk]`` or ``[daily_trend.symbols.SPY]``).
A list means these values; an inline table ``{ low, high, step }`` a range (``log = true`` for
a log range under optuna, which draws from it; a grid needs ``step``).

Everything is checked against the parameter model before a trial runs: a value the model
refuses on its own (out of range, wrong type) is a ``SpaceError`` naming the file, the
parameter and the reason. A combination the model refuses (``tp1_fraction + tp2_fraction >
1``) is the sweep's to skip and count, unless every combination is refused: then that too is
a ``SpaceError``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from magellan_daemon.config.loading import read_toml
from magellan_daemon.errors import ConfigError

Scalar = bool | int | float | str
RANGE_KEYS = frozenset({"low", "high", "step", "log"})
SEARCHES = ("grid", "optuna")
# Optuna's space may be continuous: its combinations are checked on each parameter's ends
# (and its listed values), up to this many.
MAX_CHECKED_COMBINATIONS = 4096


class SpaceError(Exception):
    """A space file that cannot be swept: the file, the parameter and why."""

    def __init__(self, path: Path, parameter: str, reason: str) -> None:
        super().__init__(f"{path}: {parameter}: {reason}")


@dataclass(frozen=True, slots=True)
class Parameter:
    """One swept parameter: listed ``values``, or a range ``low``..``high``."""

    name: str  # dotted path in the strategy's parameter model
    integer: bool  # the model holds an int: ranges draw ints
    values: tuple[Scalar, ...] | None = None
    low: float | int | None = None
    high: float | int | None = None
    step: float | int | None = None
    log: bool = False

    def grid_values(self) -> tuple[Scalar, ...]:
        """Every value a grid runs (a range needs its step)."""
        if self.values is not None:
            return self.values
        assert self.low is not None and self.high is not None and self.step is not None
        low, step = Decimal(str(self.low)), Decimal(str(self.step))
        count = int((Decimal(str(self.high)) - low) / step) + 1
        points = (low + i * step for i in range(count))
        return tuple(int(p) if self.integer else float(p) for p in points)

    def checked_values(self) -> tuple[Scalar, ...]:
        """The values checked before the sweep: all of a grid's, a continuous range's ends."""
        if self.values is not None or self.step is not None:
            return self.grid_values()
        assert self.low is not None and self.high is not None
        return (self.low, self.high)

    def suggest(self, trial: Any) -> Scalar:
        """This parameter's value for an optuna trial (a stepped float snapped to its step,
        so that the value run and recorded is the grid's, not ``low + k * step`` in binary)."""
        if self.values is not None:
            return trial.suggest_categorical(self.name, list(self.values))
        assert self.low is not None and self.high is not None
        if self.integer:
            step = int(self.step or 1)
            return trial.suggest_int(self.name, self.low, self.high, step=step, log=self.log)
        drawn = trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)
        if self.step is None:
            return drawn
        low, step = Decimal(str(self.low)), Decimal(str(self.step))
        return float(low + round((Decimal(repr(drawn)) - low) / step) * step)

    def parse(self, text: str) -> Scalar:
        """A value as ``trials.csv`` writes it (``format_value``), read back."""
        if self.values is not None:
            for value in self.values:
                if format_value(value) == text:
                    return value
            raise ValueError(f"{text!r} is not a value of {self.name}")
        return int(text) if self.integer else float(text)

    def describe(self) -> dict[str, Any]:
        """As ``sweep.json`` and the study's identity show it."""
        if self.values is not None:
            return {"values": list(self.values)}
        out: dict[str, Any] = {"low": self.low, "high": self.high}
        if self.step is not None:
            out["step"] = self.step
        if self.log:
            out["log"] = True
        return out


def format_value(value: Scalar | None) -> str:
    """A parameter's or metric's cell in ``trials.csv``: floats in their shortest exact form
    (they read back to the same float), booleans as TOML writes them, none as empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


@dataclass(frozen=True, slots=True)
class Space:
    """The swept parameters of one strategy, checked against its parameter model."""

    path: Path
    strategy: str
    parameters: tuple[Parameter, ...]

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.parameters]

    def size(self, search: str, trials: int) -> int:
        """How many trials the study has: the grid's combinations, or optuna's ``trials``."""
        if search != "grid":
            return trials
        return math.prod(len(p.grid_values()) for p in self.parameters)

    def grid(self) -> list[dict[str, Scalar]]:
        """Every combination, the last parameter varying fastest (the trials' order)."""
        names = self.names
        product = itertools.product(*(p.grid_values() for p in self.parameters))
        return [dict(zip(names, combo, strict=True)) for combo in product]

    def describe(self) -> dict[str, Any]:
        return {p.name: p.describe() for p in self.parameters}


def with_values(base: BaseModel, values: dict[str, Scalar]) -> BaseModel:
    """``base`` with ``values`` (by dotted path) put in, validated by its model; raises
    pydantic's ``ValidationError`` when the model refuses the result."""
    data = base.model_dump()
    for name, value in values.items():
        *parents, leaf = name.split(".")
        node = data
        for part in parents:
            node = node[part]
        node[leaf] = value
    return type(base).model_validate(data)


def refusal(exc: ValidationError) -> str:
    """The model's first reason, readable."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    reason = str(first["msg"]).removeprefix("Value error, ")
    return f"{where}: {reason}" if where else reason


def load_space(path: Path, strategy: str, base: BaseModel, search: str) -> Space:
    """Read ``path``'s ``[strategy]`` table and check it against ``base``'s model; raise
    ``SpaceError`` on anything that cannot be swept."""
    try:
        data = read_toml(path)
    except ConfigError as exc:
        raise SpaceError(path, exc.field, exc.reason) from None
    table = data.get(strategy)
    if not isinstance(table, dict):
        known = ", ".join(f"[{k}]" for k in data) or "none"
        raise SpaceError(path, f"[{strategy}]", f"no such table (tables: {known})")
    current = base.model_dump()
    parameters = tuple(
        _parameter(path, name, spec, current, search) for name, spec in _flatten(table)
    )
    if not parameters:
        raise SpaceError(path, f"[{strategy}]", "no parameter to sweep")
    space = Space(path, strategy, parameters)
    for parameter in parameters:
        for value in parameter.checked_values():
            _check_value(path, base, parameter.name, value)
    _check_combinations(space, base, search)
    return space


def _flatten(table: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted name, spec) of every parameter; a table that is not a range is a sub-model."""
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and not ({"low", "high"} & set(value)):
            yield from _flatten(value, f"{name}.")
        else:
            yield name, value


def _current(path: Path, name: str, current: dict[str, Any]) -> Any:
    node: Any = current
    for depth, part in enumerate(name.split(".")):
        if not isinstance(node, dict) or part not in node:
            where = ".".join(name.split(".")[:depth]) or "the strategy"
            known = ", ".join(sorted(node)) if isinstance(node, dict) else "none"
            raise SpaceError(path, name, f"unknown parameter (parameters of {where}: {known})")
        node = node[part]
    return node


def _parameter(path: Path, name: str, spec: Any, current: dict[str, Any], search: str) -> Parameter:
    present = _current(path, name, current)
    if isinstance(present, dict | list | tuple):
        raise SpaceError(path, name, "not a single value: sweep its entries by their own keys")
    integer = isinstance(present, int) and not isinstance(present, bool)
    if isinstance(spec, list):
        return _listed(path, name, spec, integer)
    if isinstance(spec, dict):
        return _ranged(path, name, spec, integer, isinstance(present, bool | str), search)
    raise SpaceError(
        path, name, f"expected a list of values or {{ low, high, step }}, got {spec!r}"
    )


def _listed(path: Path, name: str, spec: list[Any], integer: bool) -> Parameter:
    if not spec:
        raise SpaceError(path, name, "an empty list of values")
    for value in spec:
        if not isinstance(value, bool | int | float | str):
            raise SpaceError(path, name, f"values must be numbers, booleans or text, got {value!r}")
    if len({format_value(v) for v in spec}) < len(spec):
        raise SpaceError(path, name, "a value is listed twice")
    return Parameter(name, integer, values=tuple(spec))


def _ranged(
    path: Path, name: str, spec: dict[str, Any], integer: bool, textual: bool, search: str
) -> Parameter:
    unknown = set(spec) - RANGE_KEYS
    if unknown:
        raise SpaceError(
            path, name, f"unknown key {sorted(unknown)[0]!r} in a range (low, high, step, log)"
        )
    if textual:
        raise SpaceError(path, name, "a range needs a number parameter: list the values")
    low, high, step, log = (
        spec.get("low"),
        spec.get("high"),
        spec.get("step"),
        spec.get("log", False),
    )
    number = (int,) if integer else (int, float)
    for key, value in (("low", low), ("high", high), ("step", step)):
        if value is None and key != "step":
            raise SpaceError(path, name, f"a range needs {key}")
        if value is not None and (isinstance(value, bool) or not isinstance(value, number)):
            kind = "an integer" if integer else "a number"
            raise SpaceError(path, name, f"{key} must be {kind}, got {value!r}")
    assert low is not None and high is not None
    if not isinstance(log, bool):
        raise SpaceError(path, name, f"log must be true or false, got {log!r}")
    if high <= low:
        raise SpaceError(path, name, f"high ({high}) must be above low ({low})")
    if step is not None and step <= 0:
        raise SpaceError(path, name, f"step must be above 0, got {step}")
    _fits_search(path, name, low, step, log, search)
    return Parameter(name, integer, low=low, high=high, step=step, log=log)


def _fits_search(
    path: Path, name: str, low: float, step: float | None, log: bool, search: str
) -> None:
    if search == "grid" and step is None:
        raise SpaceError(path, name, "a range needs a step under --search grid")
    if search == "grid" and log:
        raise SpaceError(path, name, "log = true is for --search optuna (a grid steps linearly)")
    if log and step is not None:
        raise SpaceError(path, name, "a log range has no step")
    if log and low <= 0:
        raise SpaceError(path, name, f"a log range needs low above 0, got {low}")


def _check_value(path: Path, base: BaseModel, name: str, value: Scalar) -> None:
    """A value the model refuses whatever the other parameters are: its own field's error."""
    try:
        with_values(base, {name: value})
    except ValidationError as exc:
        for error in exc.errors():
            if ".".join(str(p) for p in error["loc"]) == name:
                reason = str(error["msg"]).removeprefix("Value error, ")
                raise SpaceError(path, name, f"{value!r} is refused: {reason}") from None


def _check_combinations(space: Space, base: BaseModel, search: str) -> None:
    if search == "grid":
        combos: Iterator[dict[str, Scalar]] = iter(space.grid())
    else:
        names = space.names
        product = itertools.product(*(p.checked_values() for p in space.parameters))
        combos = (
            dict(zip(names, c, strict=True))
            for c in itertools.islice(product, MAX_CHECKED_COMBINATIONS)
        )
    first = ""
    for combo in combos:
        try:
            with_values(base, combo)
            return
        except ValidationError as exc:
            first = first or refusal(exc)
    raise SpaceError(
        space.path,
        ", ".join(space.names),
        f"every combination is refused by {space.strategy}'s parameters ({first})",
    )
