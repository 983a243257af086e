"""Loading and validating the daemon's TOML configs (``configs/magellan.toml`` + one per
strategy).

``load_config(path)`` reads the daemon file, resolves each strategy's ``config`` path
against the daemon file's folder, validates every file with its pydantic model
(frozen, ``extra="forbid"``) and returns a ``MagellanConfig``. Any problem raises
``ConfigError(file, field, reason)``. Accounts hold the NAMES of the environment variables
with the API key and secret, never the keys themselves.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

from magellan_daemon.errors import ConfigError
from magellan_daemon.notify.settings import NotifyConfig
from magellan_daemon.runtime.drives import drive_of
from magellan_daemon.web.settings import WebConfig
from strategies.api.descriptor import StrategySpec
from strategies.api.params import FrozenModel
from strategies.registry import REGISTRY, descriptor

ENV_NAME_PATTERN = r"^[A-Z_][A-Z0-9_]*$"


class AccountConfig(FrozenModel):
    """One Alpaca account: the names of the env vars holding its key id and secret."""

    key_env: str = Field(pattern=ENV_NAME_PATTERN, description="Env var with the API key id.")
    secret_env: str = Field(pattern=ENV_NAME_PATTERN, description="Env var with the secret.")
    requests_per_minute: int = Field(
        default=200,
        ge=1,
        le=10_000,
        description="REST requests a minute the daemon allows itself on this account "
        "(Alpaca's trading API allows 200; raise it only with the broker's own limit, e.g. "
        "a simulator run at high virtual speed with a raised --rate-limit).",
    )


class StrategyEntry(FrozenModel):
    """Where a strategy's parameters live and which account it trades."""

    config: Path = Field(description="The strategy's TOML, relative to this file.")
    account: str = Field(description="Name of the [accounts] entry it trades on.")
    enabled: bool = Field(default=True, description="false: not run (its state is kept).")


class DataConfig(FrozenModel):
    """How the daemon asks for historical bars (``[data]``)."""

    adjustment: Literal["split", "all"] = Field(
        default="split",
        description="Every historical bar the daemon asks for (warm-up, gap fill, backfill) "
        'is adjusted: "split" for splits, "all" for splits and dividends (never raw: a split '
        "day would look like a crash to the indicators).",
    )


class GuardConfig(FrozenModel):
    """The position guard (``[guard]``): what it does before the close."""

    close_margin_minutes: float = Field(
        default=5.0,
        gt=0,
        le=120,
        description="Intraday strategies are flattened this many minutes before the close "
        "(the broker's calendar close, so 12:55 on a 13:00 half day).",
    )


class MagellanFile(FrozenModel):
    """The daemon file as written (``configs/magellan.toml``)."""

    mode: Literal["paper", "live"] = Field(
        default="paper", description='"live" trades real money, and only with --live too.'
    )
    feed: Literal["iex", "sip"] = Field(
        default="iex", description="Market-data feed (sip needs a paid subscription)."
    )
    state_dir: Path = Field(
        default=Path("./var"),
        description="Ledger and trade logs, relative to this file ($STATE_DIRECTORY wins).",
    )
    metrics_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="Prometheus /metrics and /healthz on 127.0.0.1:PORT; 0 = a free port; "
        "absent = off.",
    )
    data: DataConfig = Field(
        default_factory=DataConfig, description="Historical bars (see `[data]`)."
    )
    accounts: dict[str, AccountConfig] = Field(
        min_length=1, description="Alpaca accounts by name (env var names, never keys)."
    )
    guard: GuardConfig = Field(
        default_factory=GuardConfig, description="The position guard (see [guard])."
    )
    web: WebConfig | None = Field(
        default=None, description="The read-only status page (see [web]); absent = off."
    )
    notify: NotifyConfig | None = Field(
        default=None, description="Notifications (see [notify]); absent = none."
    )
    strategies: dict[str, StrategyEntry] = Field(
        min_length=1,
        description="Which strategies run (by name: "
        + ", ".join(REGISTRY)
        + "), from which file, on which account.",
    )

    @field_validator("strategies")
    @classmethod
    def _known_strategies(cls, value: dict[str, StrategyEntry]) -> dict[str, StrategyEntry]:
        unknown = sorted(set(value) - set(REGISTRY))
        if unknown:
            raise ValueError(f"unknown strategy {unknown[0]!r} (known: {', '.join(REGISTRY)})")
        return value


@dataclass(frozen=True, slots=True, kw_only=True)
class StrategyConfig:
    """One strategy with its validated parameters and the spec resolved from them."""

    name: str
    config_path: Path
    account: str
    enabled: bool
    params: BaseModel
    spec: StrategySpec


@dataclass(frozen=True, slots=True, kw_only=True)
class MagellanConfig:
    """The whole validated configuration; paths are absolute."""

    path: Path
    mode: Literal["paper", "live"]
    feed: Literal["iex", "sip"]
    state_dir: Path
    accounts: dict[str, AccountConfig]
    strategies: dict[str, StrategyConfig]
    metrics_port: int | None = None
    adjustment: Literal["split", "all"] = "split"  # [data] adjustment of historical bars
    guard: GuardConfig = field(default_factory=GuardConfig)
    web: WebConfig | None = None
    notify: NotifyConfig | None = None


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file; a missing file or bad syntax is a ``ConfigError``."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(path, "(file)", "file not found") from None
    except OSError as exc:
        raise ConfigError(path, "(file)", f"cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, "(syntax)", f"TOML syntax error: {exc}") from None


def validation_error(path: Path, exc: ValidationError) -> ConfigError:
    """The first pydantic error as a ``ConfigError`` (field path dotted, reason readable)."""
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "(top level)"
    reason = str(first["msg"]).removeprefix("Value error, ")
    # Env-var NAME fields: a value typed there may be a pasted key, token or URL.
    secret_ish = first["loc"][:1] == ("accounts",) or first["loc"][-1:] in (
        ("token_env",),
        ("urls_env",),
    )
    if first["type"] == "extra_forbidden":
        reason = "unknown field"
    elif first["type"] == "string_pattern_mismatch" and secret_ish:
        # Never echo what was typed there: it may be a pasted API key.
        reason = "must be the NAME of an environment variable (like APCA_API_KEY_ID), not a key"
    elif isinstance(first.get("input"), str | int | float | bool) and not secret_ish:
        reason = f"{reason} (got {first['input']!r})"
    more = exc.error_count() - 1
    if more:
        reason = f"{reason} (and {more} more error{'s' if more > 1 else ''})"
    return ConfigError(path, field, reason)


def load_strategy_params(name: str, path: Path) -> BaseModel:
    """Read and validate one strategy's TOML file."""
    data = read_toml(path)
    model = descriptor(name).params_class
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(path, exc) from None


def load_config(path: str | Path) -> MagellanConfig:
    """Load ``magellan.toml`` and every strategy file it names; raise ``ConfigError``."""
    path = Path(path).resolve()
    try:
        daemon = MagellanFile.model_validate(read_toml(path))
    except ValidationError as exc:
        raise validation_error(path, exc) from None
    folder = path.parent
    strategies: dict[str, StrategyConfig] = {}
    for name, entry in daemon.strategies.items():
        if entry.account not in daemon.accounts:
            known = ", ".join(sorted(daemon.accounts))
            raise ConfigError(
                path,
                f"strategies.{name}.account",
                f"unknown account {entry.account!r} (accounts: {known})",
            )
        params_path = (folder / entry.config).resolve()
        params = load_strategy_params(name, params_path)
        strategies[name] = StrategyConfig(
            name=name,
            config_path=params_path,
            account=entry.account,
            enabled=entry.enabled,
            params=params,
            spec=descriptor(name).resolve(params),
        )
    _one_minute_stream_per_account(path, strategies)
    return MagellanConfig(
        path=path,
        mode=daemon.mode,
        feed=daemon.feed,
        state_dir=(folder / daemon.state_dir).resolve(),
        accounts=dict(daemon.accounts),
        strategies=strategies,
        metrics_port=daemon.metrics_port,
        adjustment=daemon.data.adjustment,
        guard=daemon.guard,
        web=daemon.web,
        notify=daemon.notify,
    )


def _one_minute_stream_per_account(path: Path, strategies: dict[str, StrategyConfig]) -> None:
    """Alpaca allows one market-data websocket per account, so two strategies driven by the
    bar stream cannot share an account."""
    seen: dict[str, str] = {}
    for name, strategy in strategies.items():
        if not strategy.enabled or not drive_of(strategy.spec.drive).bar_stream:
            continue
        other = seen.setdefault(strategy.account, name)
        if other != name:
            raise ConfigError(
                path,
                f"strategies.{name}.account",
                f"{other} already streams minute bars on account {strategy.account!r} "
                "(one market-data stream per account): give it its own account",
            )


def require_daemon_timeframes(config: MagellanConfig) -> None:
    """The daemon drives each strategy with the bars of its drive (hourly jobs give hourly
    bars): a strategy configured for other bars (as the backtest may run it) is refused."""
    for name, strategy in config.strategies.items():
        wanted = descriptor(name).timeframe
        if strategy.enabled and strategy.spec.timeframe != wanted:
            raise ConfigError(
                strategy.config_path,
                "timeframe",
                f"{strategy.spec.timeframe!r} bars are for magellan backtest; the daemon drives "
                f"{name} with {wanted!r} bars",
            )
