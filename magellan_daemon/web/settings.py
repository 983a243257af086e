"""``[web]`` in magellan.toml: where the status page listens and who may read it."""

from __future__ import annotations

import ipaddress
import os

from pydantic import Field, model_validator

from magellan_daemon.errors import ConfigError
from strategies.api.params import FrozenModel

ENV_NAME_PATTERN = r"^[A-Z_][A-Z0-9_]*$"
LOOPBACK_NAMES = {"localhost"}


class WebConfig(FrozenModel):
    """The read-only status page (``[web]``; no table = no page)."""

    port: int = Field(ge=0, le=65535, description="TCP port of the page; 0 = a free port.")
    bind: str = Field(
        default="127.0.0.1",
        min_length=1,
        description="Address to listen on. Anything but a loopback address needs token_env.",
    )
    token_env: str | None = Field(
        default=None,
        pattern=ENV_NAME_PATTERN,
        description="NAME of the env var holding a bearer token every request must carry "
        "(Authorization: Bearer ...); required off loopback.",
    )

    @model_validator(mode="after")
    def _token_off_loopback(self) -> WebConfig:
        if not is_loopback(self.bind) and self.token_env is None:
            raise ValueError(
                f"bind {self.bind!r} is not a loopback address: set token_env to the name of "
                "an environment variable holding a bearer token (or bind 127.0.0.1)"
            )
        return self


def is_loopback(address: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost."""
    if address in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def web_token(web: WebConfig | None, config_path: object = "magellan.toml") -> str | None:
    """The bearer token the page requires (None when it needs none); a ``token_env`` whose
    variable is unset or empty is a ``ConfigError`` (the daemon refuses to start)."""
    if web is None or web.token_env is None:
        return None
    token = os.environ.get(web.token_env, "")
    if not token.strip():
        raise ConfigError(
            config_path,
            "web.token_env",
            f"environment variable {web.token_env} is not set or empty: the status page "
            "needs its bearer token",
        )
    return token.strip()
