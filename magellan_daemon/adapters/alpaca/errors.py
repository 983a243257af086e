"""Alpaca's answers classified into the broker error taxonomy (``magellan_daemon.errors``).

A 403 that refuses the *account* (trading blocked, not authorized to trade, suspended by the
user, a bare "forbidden.") is ``BrokerFatal``; a 403 that refuses one *order* (buying power,
insufficient qty, wash trade, PDT protection, a symbol that cannot be traded, even one whose
text says "blocked") is a ``BrokerRejected``: exiting with code 3 on it would leave the
position without its exit. 422 ``client_order_id must be unique`` is ``BrokerDuplicate``
(alpaca-py re-POSTs on 429/504 by itself; a restart may re-send).

``classify`` parses the error body defensively: alpaca-py's ``APIError.code`` itself raises
when the body is not JSON or has no ``code``.
"""

from __future__ import annotations

import json

import requests
from alpaca.common.exceptions import APIError

from magellan_daemon.errors import (
    BrokerDuplicate,
    BrokerError,
    BrokerFatal,
    BrokerNotFound,
    BrokerRejected,
    BrokerRetryable,
)

DUPLICATE_CLIENT_ORDER_ID = 40010001
# What Alpaca says when the account itself may not trade (alpaca-wire 3.2 and the account's
# trading_blocked / account_blocked / trade_suspended_by_user flags): lower case, matched in
# the message. Anything else in a 403 is about the one order.
ACCOUNT_REFUSALS = (
    "account is not authorized to trade",
    "account is blocked",
    "account blocked",
    "trading is blocked for this account",
    "trading blocked for this account",
    "account is suspended",
    "new orders are rejected by user request",
)


def _body(error: APIError) -> tuple[int | None, str]:
    text = str(error)
    try:
        body = json.loads(text)
    except ValueError:
        return None, text[:200]
    if not isinstance(body, dict):
        return None, text[:200]
    code = body.get("code")
    return (code if isinstance(code, int) else None), str(body.get("message", text))[:300]


def refuses_account(message: str) -> bool:
    """Whether a 403's message refuses the whole account rather than one order."""
    text = message.strip().lower()
    return text in ("forbidden", "forbidden.") or any(p in text for p in ACCOUNT_REFUSALS)


def classify(exc: BaseException) -> BrokerError:
    """Map an alpaca-py / requests / timeout exception to the taxonomy."""
    if isinstance(exc, BrokerError):
        return exc
    if isinstance(exc, APIError):
        status = exc.status_code
        code, message = _body(exc)
        if status == 404:
            return BrokerNotFound(message, status, code)
        if status == 422 and "client_order_id must be unique" in message:
            return BrokerDuplicate(message, status, code)
        if status == 401 or (status == 403 and refuses_account(message)):
            return BrokerFatal(message, status, code)
        if status is not None and (status == 429 or status >= 500):
            return BrokerRetryable(message, status, code)
        return BrokerRejected(message, status, code)
    if isinstance(exc, (requests.Timeout, requests.ConnectionError, TimeoutError, OSError)):
        return BrokerRetryable(f"{type(exc).__name__}: {exc}"[:300])
    return BrokerRetryable(f"unexpected {type(exc).__name__}: {exc}"[:300])
