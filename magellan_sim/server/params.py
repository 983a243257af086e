"""Parsing and validating request parameters the way alpaca-py sends them (alpaca-wire 1.6).

GET/DELETE carry a query string (Python-cased booleans, ISO datetimes with offsets, comma
symbol lists); POST/PATCH carry a JSON body (numbers or strings for qty and prices). Every
problem raises ``SimError`` 422 (code 40010001) naming the field, so a bad request never
reaches the exchange core and never becomes a 500.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from magellan_sim.errors import SimError

INVALID_PARAM_CODE = 40010001
MALFORMED_CODE = 40010000
# Anything this large is a typo or an attack, never an order: refusing it up front keeps
# Decimal arithmetic in the core far from overflow.
MAX_DIGITS_BEFORE_POINT = 9  # values below 1e9
MAX_DECIMAL_PLACES = 9
MAX_STRING = 256
TRUE_WORDS = frozenset({"true", "1", "yes"})
FALSE_WORDS = frozenset({"false", "0", "no"})


def invalid(message: str) -> SimError:
    """A 422 for a bad parameter, in Alpaca's shape."""
    return SimError(422, INVALID_PARAM_CODE, message)


def data_invalid(message: str) -> SimError:
    """A 400 for a bad market-data parameter (the data API's errors carry no code)."""
    return SimError(400, None, message)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON constant {name}")


def parse_json_body(raw: bytes) -> dict[str, Any]:
    """Decode a JSON object body; numbers become Decimal so money stays exact."""
    if not raw.strip():
        return {}
    try:
        value = json.loads(
            raw,
            parse_float=Decimal,
            parse_int=Decimal,
            parse_constant=_reject_constant,
        )
    except (ValueError, RecursionError) as exc:
        raise SimError(400, MALFORMED_CODE, "malformed request body: invalid JSON") from exc
    if not isinstance(value, dict):
        raise SimError(400, MALFORMED_CODE, "malformed request body: expected a JSON object")
    return value


def to_decimal(value: Any, field: str, *, positive: bool = True) -> Decimal | None:
    """A finite, bounded Decimal from a JSON number or numeric string; None stays None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, Decimal | int | float | str):
        raise invalid(f"{field} must be a number")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise invalid(f"{field} must be a number") from exc
    if not number.is_finite():
        raise invalid(f"{field} must be a finite number")
    # judged on the exponent alone: arithmetic on "1e999999999" would overflow the context
    if number and number.adjusted() >= MAX_DIGITS_BEFORE_POINT:
        raise invalid(f"{field} is out of range")
    if number.as_tuple().exponent < -MAX_DECIMAL_PLACES:  # type: ignore[operator]
        raise invalid(f"{field} has more than {MAX_DECIMAL_PLACES} decimal places")
    if positive and number <= 0:
        raise invalid(f"{field} must be > 0")
    if number == number.to_integral_value():
        # "10.0" -> "10" without normalize()'s scientific notation ("1E+1")
        number = number.quantize(Decimal(1))
    return number


def to_str(value: Any, field: str, *, max_len: int = MAX_STRING) -> str | None:
    """A non-empty string of bounded length; None stays None."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(f"{field} must be a string")
    if not value or len(value) > max_len:
        raise invalid(f"{field} must be 1 to {max_len} characters")
    return value


def to_choice(value: Any, field: str, choices: frozenset[str]) -> str | None:
    """One of ``choices`` (case-insensitive); None stays None."""
    text = to_str(value, field)
    if text is None:
        return None
    lowered = text.lower()
    if lowered not in choices:
        raise invalid(f"invalid {field}: {text!r}")
    return lowered


def to_bool(value: Any, field: str) -> bool | None:
    """A JSON bool or a query-string word (``True``, ``false``, ``1``)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in TRUE_WORDS:
            return True
        if lowered in FALSE_WORDS:
            return False
    raise invalid(f"{field} must be a boolean")


def to_int(value: Any, field: str, *, low: int, high: int) -> int | None:
    """An integer in ``[low, high]`` from a query word or JSON number; None stays None."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise invalid(f"{field} must be an integer")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise invalid(f"{field} must be an integer") from exc
    if not number.is_finite() or number != number.to_integral_value():
        raise invalid(f"{field} must be an integer")
    if not low <= number <= high:
        raise invalid(f"{field} must be between {low} and {high}")
    return int(number)


def to_datetime(value: Any, field: str) -> datetime | None:
    """An aware UTC datetime from RFC 3339 / ISO 8601 (a bare date is its midnight UTC)."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 64:
        raise invalid(f"{field} must be an RFC 3339 timestamp")
    # an unencoded "+00:00" in a query string arrives as " 00:00"
    text = value.strip().replace(" ", "+")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise invalid(f"{field} must be an RFC 3339 timestamp") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def to_date(value: Any, field: str) -> date | None:
    """A calendar date from ``YYYY-MM-DD`` (a full timestamp is accepted for its date)."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 64:
        raise invalid(f"{field} must be a date (YYYY-MM-DD)")
    try:
        return date.fromisoformat(value.strip()[:10])
    except ValueError as exc:
        raise invalid(f"{field} must be a date (YYYY-MM-DD)") from exc


def to_symbols(value: Any, field: str = "symbols") -> list[str] | None:
    """A comma-separated symbol list, upper-cased, blanks dropped; None stays None."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 10_000:
        raise invalid(f"{field} must be a comma-separated list")
    symbols = [part.strip().upper() for part in value.split(",") if part.strip()]
    if not symbols:
        raise invalid(f"{field} is empty")
    return symbols


def query_value(query: Mapping[str, str], name: str) -> str | None:
    """A query parameter, with empty values treated as absent (alpaca-py drops them)."""
    value = query.get(name)
    return value if value not in (None, "") else None
