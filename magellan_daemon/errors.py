"""Errors the daemon reports to its operator, and the broker error taxonomy.

Every broker failure is mapped (by the adapter that met it) to one behaviour:

- ``BrokerRetryable``: timeout, connection error, 429, 5xx. For a submit this means the
  outcome is *unknown*: look the order up by ``client_order_id`` before anything else.
- ``BrokerRejected``: the broker answered no (buying power, insufficient qty, bad
  parameters, a terminal order). Terminal: record and move on.
- ``BrokerDuplicate``: the ``client_order_id`` exists already: the order was placed: fetch it.
- ``BrokerNotFound``: 404.
- ``BrokerFatal``: the credentials or the account are refused: nothing will work; halt and
  alert.

The taxonomy is the broker port's vocabulary: the execution layer catches these and never
an adapter's own exceptions.
"""

from __future__ import annotations

from pathlib import Path


class ConfigError(Exception):
    """A config file that cannot be used: names the file, the field and the reason.

    ``str(err)`` is ``"<file>: <field>: <reason>"``; the CLI prints it and exits 2.
    """

    def __init__(self, file: str | Path, field: str, reason: str) -> None:
        self.file = str(file)
        self.field = field
        self.reason = reason
        super().__init__(f"{self.file}: {field}: {reason}")


class BrokerError(Exception):
    """Base of the broker taxonomy; ``status`` and ``code`` when the broker answered."""

    def __init__(self, message: str, status: int | None = None, code: int | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


class BrokerRetryable(BrokerError):
    """Try again later (with backoff); for submits the outcome is unknown."""


class BrokerRejected(BrokerError):
    """The broker refused; do not retry the same request."""


class BrokerDuplicate(BrokerRejected):
    """The client_order_id exists already: the order was placed."""


class BrokerNotFound(BrokerRejected):
    """No such order, position or asset."""


class BrokerFatal(BrokerError):
    """Credentials or account unusable."""
