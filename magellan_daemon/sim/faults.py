"""Fault injection settings, one mutable instance per Exchange (``exchange.faults``)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass
class Faults:
    """What to break, on demand. The server applies the HTTP/stream ones, the core the rest."""

    http_error_rate: float = 0.0
    http_status: int = 503
    latency_ms: int = 0
    drop_streams: bool = False
    reject_next_orders: int = 0
    partial_fill_ratio: float = 0.0
    seed: int = 0

    def update(self, **changes: Any) -> None:
        """Set the given fields after validating names, types and ranges (ValueError naming
        the field); nothing changes if any field is invalid."""
        known = {f.name: f for f in fields(self)}
        checked: dict[str, Any] = {}
        for name, value in changes.items():
            if name not in known:
                raise ValueError(f"unknown fault field: {name}")
            checked[name] = _checked(name, value)
        for name, value in checked.items():
            setattr(self, name, value)

    def as_dict(self) -> dict[str, Any]:
        """Current settings as a JSON-ready dict."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _checked(name: str, value: Any) -> Any:
    if name == "drop_streams":
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be a boolean")
        return value
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, not a boolean")
    if name in ("http_error_rate", "partial_fill_ratio"):
        if not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"{name} must be a number between 0 and 1")
        return float(value)
    if not isinstance(value, int):
        raise ValueError(f"{name} must be an integer")
    if name == "http_status" and not 400 <= value <= 599:
        raise ValueError(f"{name} must be an HTTP error status (400-599)")
    if name in ("latency_ms", "reject_next_orders") and not 0 <= value <= 10_000_000:
        raise ValueError(f"{name} must be a non-negative integer")
    return value
