"""Shared helpers for the Daily Trend / Hourly Swing tests (not a test module)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from magellan_daemon.backtest.signals_replay import SessionLookup
from magellan_daemon.config.loading import load_strategy_params
from magellan_sim.market.calendar import SessionCalendar
from strategies.api.model import Bar, Intent, OrderUpdate, Timeframe
from strategies.api.session import Session

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def sessions() -> SessionLookup:
    return SessionLookup(SessionCalendar())


def params(name: str) -> Any:
    return load_strategy_params(name, CONFIGS / f"{name}.toml")


def pandas_rsi(close: pd.Series, period: int) -> pd.Series:
    """The spec's EMA RSI, vectorised."""
    alpha = 2 / (period + 1)
    delta = close.diff()
    gain = delta.clip(lower=0).ewm(alpha=alpha, adjust=False).mean()
    loss = (-delta).clip(lower=0).ewm(alpha=alpha, adjust=False).mean()
    rsi = 100 - 100 / (1 + gain / loss)
    return rsi.where(loss != 0, np.where(gain == 0, 50.0, 100.0))


def bar(symbol: str, t: datetime, close: float, tf: Timeframe = "1Day", **kw: float) -> Bar:
    return Bar(
        symbol=symbol,
        timeframe=tf,
        t=t,
        open=kw.get("open", close),
        high=kw.get("high", close),
        low=kw.get("low", close),
        close=close,
        volume=kw.get("volume", 1000.0),
    )


def est_session(day: date, close_hour: int = 21) -> Session:
    """A synthetic winter session: 14:30Z..close_hour:00Z (09:30..16:00 ET by default)."""
    base = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return Session(
        date=day,
        open=base + timedelta(hours=14, minutes=30),
        close=base + timedelta(hours=close_hour),
    )


def fill(
    strategy_name: str, intent: Intent, qty: int, price: float, filled: int | None = None
) -> OrderUpdate:
    return OrderUpdate(
        strategy=strategy_name,
        symbol=intent.symbol,
        leg=intent.leg,
        signal_time=intent.signal_time,
        side="buy" if intent.action == "buy" else "sell",
        kind="fill",
        time=intent.signal_time,
        qty=qty,
        price=price,
        filled_qty=qty if filled is None else filled,
    )
