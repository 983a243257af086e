"""What every peer script feeds its engine: the shared 1Min bars of the regular session
(pandas only, so each peer's venv can import it).

A bar stamped ``t`` (its start, as Alpaca stamps) counts when its whole minute lies inside
a session, ``open <= t`` and ``t + 1 min <= close``: the test ours applies
(``HourlySwing._bar_in_session``). The sessions come from the driver, which writes them
from our NYSE calendar (holidays and early closes), so every engine sees the same minutes.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pandas as pd


def regular_bars(
    path: Path, sessions: pd.DataFrame, start: date | None, end: date | None
) -> pd.DataFrame:
    """One symbol's 1Min bars whose whole minute lies inside a regular session, up to
    ``end``; the index is the bar's start (UTC, naive for backtrader)."""
    df = pd.read_csv(path, usecols=["timestamp", "open", "high", "low", "close", "volume"])
    t = pd.to_datetime(df["timestamp"], utc=True)
    day = t.dt.tz_convert("America/New_York").dt.date
    frame = sessions.reindex(day.values)
    inside = (t.values >= frame["open"].values) & (
        (t + pd.Timedelta(minutes=1)).values <= frame["close"].values
    )
    if end is not None:
        inside &= (day <= end).values
    out = df.loc[inside, ["open", "high", "low", "close", "volume"]].astype(float)
    out.index = t[inside].dt.tz_localize(None).values
    out.attrs["first_trading_row"] = (
        0 if start is None else int((day[inside] < start).sum())  # warm-up rows before start
    )
    return out


def load_sessions(path: Path) -> pd.DataFrame:
    """The driver's sessions file: {date: [open, close]} in UTC ISO."""
    raw = json.loads(path.read_text())
    frame = pd.DataFrame.from_dict(raw, orient="index", columns=["open", "close"])
    frame.index = [date.fromisoformat(d) for d in frame.index]
    frame["open"] = pd.to_datetime(frame["open"], utc=True)
    frame["close"] = pd.to_datetime(frame["close"], utc=True)
    return frame
