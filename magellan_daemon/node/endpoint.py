"""Where one account's APIs are, and the keys the daemon's clients use there."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    """Where one account's APIs are and the keys to use (held only until clients exist)."""

    account: str
    key: str = field(repr=False)
    secret: str = field(repr=False)
    paper: bool
    trading_url: str | None  # None = Alpaca's own (paper or live)
    data_url: str | None
    trading_ws: str | None
    data_ws: str | None

    def __repr__(self) -> str:
        return f"Endpoint(account={self.account!r}, url={self.trading_url or 'alpaca'})"
