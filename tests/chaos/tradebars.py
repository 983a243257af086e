"""Bar directories whose one edited session walks a Bear Trap trade through a chosen life:
the real bars, with GME's minute bars of 2024-12-05 replaced after a cut by a crash, a
trap-and-reclaim bar (the entry signal) and a shaped path to the close.

No symbol of the shared bars trades a Bear Trap entry that day (the backtest finds none),
so every order of a refusal scenario belongs to the one trade it aims at. Two shapes:

- ``scale_out``: cut at 11:00 ET; after the entry a bar reaches TP1 (the scale-out, and the
  protective stop's resize), then the price stays between TP1 and TP2 and above the stop
  until the 30-minute time stop sells the rest.
- ``dip``: ``scale_out``, but the bar after the entry's fill trades through the stop level
  and closes back at the entry price: a stop that rests fills there; without one, the
  strategy must sell at market (the sequence of issue 17's MULN day).
- ``late``: cut at 15:24 ET; after the entry the price stays flat, so the 15:55 end-of-day
  exit comes before the time stop (about 15:58).

Bars continue to 16:00 (the exchange needs a bar to fill a market order at).

``busy_bars`` makes whole busy sessions for the order volume of ``make chaos``: on days when
no shared symbol trades a Bear Trap entry, each of the eight shared symbols of Bear Trap's
universe crashes twice (morning slots 15 minutes apart from 10:00, afternoon slots from
13:00, or 15:23 for an end-of-day trade), each trade walking one of four lives in turn:
``scale_out`` (TP1, then the time stop), ``tp2`` (TP1, TP2 with the stop moved to support,
then the time stop), ``stop_out`` (the protective stop fills) and ``late`` (the EOD exit).
"""

from __future__ import annotations

import csv
import gzip
from datetime import UTC, datetime, timedelta
from pathlib import Path

DAY = "2024-12-05"
SYMBOL = "GME"
OPEN = datetime(2024, 12, 5, 14, 30, tzinfo=UTC)
CLOSE = datetime(2024, 12, 5, 21, 0, tzinfo=UTC)
CUTS = {
    "scale_out": datetime(2024, 12, 5, 16, 0, tzinfo=UTC),  # 11:00 ET
    "dip": datetime(2024, 12, 5, 16, 0, tzinfo=UTC),
    "late": datetime(2024, 12, 5, 20, 24, tzinfo=UTC),  # 15:24 ET
}


def shaped_trade_bars(real: Path, tmp: Path, shape: str) -> Path:
    """A bars dir like ``real`` whose GME 1Min bars of 2024-12-05 follow ``shape``."""
    out = tmp / f"bars-{shape}"
    if out.exists():
        return out
    for timeframe in ("1Day", "1Hour", "1Min"):
        (out / timeframe).mkdir(parents=True, exist_ok=True)
        for source in (real / timeframe).glob("*.csv.gz"):
            if not (timeframe == "1Min" and source.name == f"{SYMBOL}.csv.gz"):
                (out / timeframe / source.name).symlink_to(source)
    with gzip.open(real / "1Min" / f"{SYMBOL}.csv.gz", "rt", newline="") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    cut = CUTS[shape]
    day_end = OPEN.replace(hour=23, minute=59)
    kept = [r for r in body if _t(r[0]) <= cut or _t(r[0]) > day_end]
    session = [r for r in kept if OPEN <= _t(r[0]) <= cut]
    so = float(session[0][1])
    high = max(float(r[2]) for r in session)
    last = float(session[-1][4])
    big = 100 * max(int(r[5]) for r in session)
    merged = sorted(kept + _path(cut, so, high, last, big, shape), key=lambda r: r[0])
    with gzip.open(out / "1Min" / f"{SYMBOL}.csv.gz", "wt", 1, newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(merged)
    return out


def _path(cut: datetime, so: float, high: float, last: float, big: int, shape: str) -> list:
    def row(minute: int, o: float, h: float, low: float, c: float, v: int) -> list[str]:
        t = cut + timedelta(minutes=minute)
        cells = (f"{x:.4f}" for x in (o, h, low, c))
        return [t.strftime("%Y-%m-%dT%H:%M:%SZ"), *cells, str(v), "100", f"{c:.4f}"]

    def flat(minute: int, price: float) -> list[str]:
        return row(minute, price, price * 1.0005, price * 0.9995, price, big // 100)

    entry = 0.825 * so
    bars = [
        row(1, last, last, 0.80 * so, 0.81 * so, big),  # the crash
        row(2, 0.795 * so, 0.83 * so, 0.78 * so, entry, big),  # trap + reclaim: the signal
    ]
    minutes = int((CLOSE - cut).total_seconds() // 60)
    if shape == "late":
        return bars + [flat(m, entry) for m in range(3, minutes)]
    # TP1 = entry + 0.5 x (session high - entry); TP2 = the session high
    above_tp1 = entry + 0.7 * (high - entry)
    bars += [flat(m, entry) for m in range(3, 7)]
    if shape == "dip":  # the entry fills at minute 4's bar; minute 5 goes through the stop
        bars[4] = row(5, entry, entry, 0.74 * so, entry, big // 50)
    bars.append(row(7, entry, entry + 0.8 * (high - entry), entry, above_tp1, big // 50))
    return bars + [flat(m, above_tp1) for m in range(8, minutes)]


BUSY_SYMBOLS = ("AMC", "GME", "MARA", "MULN", "PLUG", "RIOT", "TLRY", "WKHS")
LIVES = ("scale_out", "tp2", "stop_out", "late")
ET_OFFSET = timedelta(hours=5)  # the busy days are in December: New York is UTC-5


def busy_bars(
    real: Path, tmp: Path, days: tuple[str, ...], symbols: tuple[str, ...] = BUSY_SYMBOLS
) -> Path:
    """A bars dir like ``real`` whose ``symbols`` (of ``BUSY_SYMBOLS``) trade two shaped
    Bear Trap trades on each of ``days`` (New York dates in winter)."""
    out = tmp / f"bars-busy-{'-'.join(days)}"
    if out.exists():
        return out
    for timeframe in ("1Day", "1Hour", "1Min"):
        (out / timeframe).mkdir(parents=True, exist_ok=True)
        for source in (real / timeframe).glob("*.csv.gz"):
            name = source.name.removesuffix(".csv.gz")
            if not (timeframe == "1Min" and name in symbols):
                (out / timeframe / source.name).symlink_to(source)
    for symbol in symbols:
        index = BUSY_SYMBOLS.index(symbol)  # its slots, whatever else is shaped
        with gzip.open(real / "1Min" / f"{symbol}.csv.gz", "rt", newline="") as handle:
            rows = list(csv.reader(handle))
        header, body = rows[0], rows[1:]
        for number, day in enumerate(days):
            body = _busy_session(body, day, index, number)
        with gzip.open(out / "1Min" / f"{symbol}.csv.gz", "wt", 1, newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(sorted(body, key=lambda r: r[0]))
    return out


def _busy_session(body: list[list[str]], day: str, index: int, number: int) -> list[list[str]]:
    """``body`` with ``day``'s session after the first cut replaced by two shaped trades."""
    midnight = datetime.fromisoformat(day).replace(tzinfo=UTC) + ET_OFFSET
    opening = midnight + timedelta(hours=9, minutes=30)
    closing = midnight + timedelta(hours=16)
    first = LIVES[(index + number) % 3]  # the morning trade is never the late one
    second = LIVES[(index + number + 1) % 4]
    cut1 = midnight + timedelta(hours=10, minutes=15 * index)
    cut2 = midnight + (
        timedelta(hours=15, minutes=23)
        if second == "late"
        else timedelta(hours=13, minutes=15 * index)
    )
    # ISO timestamps in UTC compare as text: no parsing of a whole history per day
    start, cut_text = _iso(opening), _iso(cut1)
    day_end = _iso(closing.replace(hour=23, minute=59))
    kept = [r for r in body if not (cut_text < r[0] <= day_end)]
    session = [r for r in kept if start <= r[0] <= cut_text]
    if not session:
        return body  # no bars that day: nothing to shape
    so = float(session[0][1])
    high = max(float(r[2]) for r in session)
    big = 100 * max(int(r[5]) for r in session)
    walk = _Walk(cut1, so, high, float(session[-1][4]), big)
    walk.trade(first, 0.80)
    walk.flat_until(cut2)
    walk.trade(second, 0.70)
    walk.flat_until(closing)
    return kept + walk.rows


class _Walk:
    """Minute bars from a cut on, one after the other, tracking the session high."""

    def __init__(self, cut: datetime, so: float, high: float, last: float, big: int) -> None:
        self.t = cut
        self.so = so
        self.high = high
        self.last = last
        self.big = big
        self.rows: list[list[str]] = []

    def bar(self, o: float, h: float, low: float, c: float, v: int) -> None:
        self.t += timedelta(minutes=1)
        cells = (f"{x:.4f}" for x in (o, h, low, c))
        self.rows.append([self.t.strftime("%Y-%m-%dT%H:%M:%SZ"), *cells, str(v), "100", f"{c:.4f}"])
        self.high = max(self.high, h)
        self.last = c

    def flat(self, minutes: int, price: float | None = None) -> None:
        p = self.last if price is None else price
        for _ in range(minutes):
            self.bar(p, p * 1.0005, p * 0.9995, p, self.big // 100)

    def flat_until(self, t: datetime) -> None:
        self.flat(max(0, int((t - self.t).total_seconds() // 60)))

    def trade(self, life: str, depth: float) -> None:
        """A crash to ``depth`` x the session open, the trap-and-reclaim signal bar, then
        ``life``."""
        so, high = self.so, self.high
        self.bar(self.last, self.last, depth * so, (depth + 0.01) * so, self.big)
        entry = (depth + 0.025) * so
        self.bar((depth - 0.005) * so, (depth + 0.03) * so, (depth - 0.02) * so, entry, self.big)
        self.flat(4, entry)
        if life == "stop_out":
            self.bar(entry, entry, (depth - 0.06) * so, (depth - 0.05) * so, self.big // 50)
            self.flat(10)
            return
        if life == "late":
            return
        above_tp1 = entry + 0.7 * (high - entry)
        self.bar(entry, entry + 0.8 * (high - entry), entry, above_tp1, self.big // 50)
        self.flat(3)
        if life == "tp2":
            beyond = entry + 0.9 * (high - entry)
            self.bar(above_tp1, high * 1.002, above_tp1, beyond, self.big // 50)
        self.flat(35)


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
