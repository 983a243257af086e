"""The simulator's API error: an HTTP status plus Alpaca's JSON error body."""

from __future__ import annotations

from typing import Any

# Alpaca's error codes (alpaca-wire section 3.2).
INVALID_PARAM = 40010001
FORBIDDEN = 40310000
NOT_FOUND = 40410000
UNPROCESSABLE = 42210000


class SimError(Exception):
    """An error the server answers with ``status`` and ``body()``."""

    def __init__(self, status: int, code: int | None, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra

    def body(self) -> dict[str, Any]:
        """JSON-ready error body; data-API errors (code None) carry only the message."""
        body: dict[str, Any] = {} if self.code is None else {"code": self.code}
        body["message"] = self.message
        body.update(self.extra)
        return body

    def __repr__(self) -> str:
        return f"SimError({self.status}, {self.code}, {self.message!r})"


def invalid(message: str) -> SimError:
    """422 / 40010001: a missing or malformed parameter (the message names the field)."""
    return SimError(422, INVALID_PARAM, message)


def not_found(message: str) -> SimError:
    """404 / 40410000."""
    return SimError(404, NOT_FOUND, message)


def data_error(message: str, status: int = 422) -> SimError:
    """Market-data API error: ``{"message": ...}`` without a code."""
    return SimError(status, None, message)
