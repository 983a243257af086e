"""``[notify]`` in magellan.toml: where notifications go and which events are sent."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from strategies.api.params import FrozenModel

ENV_NAME_PATTERN = r"^[A-Z_][A-Z0-9_]*$"
NotifyEvent = Literal["fills", "refused", "halts", "daily_summary", "reconnects", "fatal"]
ALL_EVENTS: tuple[NotifyEvent, ...] = (
    "fills",
    "refused",
    "halts",
    "daily_summary",
    "reconnects",
    "fatal",
)


class NotifyConfig(FrozenModel):
    """Notifications (``[notify]``; no table = none)."""

    urls_env: str = Field(
        pattern=ENV_NAME_PATTERN,
        description="NAME of the env var holding the apprise URLs (space or comma separated; "
        "they carry tokens: never in this file).",
    )
    events: list[NotifyEvent] = Field(
        default=list(ALL_EVENTS),
        description="Which events are sent: fills, refused (refused protective or exit "
        "orders, unprotected positions), halts (and emergency stops), daily_summary (after "
        "the close), reconnects (reconnect storms), fatal (the daemon exits on an error).",
    )
    max_per_minute: int = Field(
        default=20,
        ge=1,
        le=600,
        description="Rate limit: messages sent per minute at most; the rest are grouped "
        "into one digest.",
    )
    reconnect_storm: int = Field(
        default=3,
        ge=2,
        description="Stream reconnections within 10 minutes that make a storm.",
    )
