"""Errors the daemon reports to its operator."""

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
