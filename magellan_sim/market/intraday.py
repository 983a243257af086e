"""A deterministic minute price path inside one coarse (hourly or daily) bar.

Symbols with only hourly or daily bars still need intraday prices: an order sent at 09:31
must fill near 09:31, not at the close of the bar that began before it. ``minute_path``
turns one coarse bar into minute bars that open at its open, touch its high and its low,
and close at its close, with a Brownian-bridge wander in between that never leaves the
bar's range. The path is seeded by (symbol, bar start) through ``zlib.crc32`` (stable across
runs and Python versions, unlike ``hash``), so every query, in any order, sees the same path.
Pure: no I/O, no clock.
"""

from __future__ import annotations

import itertools
import math
import random
import zlib
from collections.abc import Sequence
from datetime import datetime

from magellan_core.timeframes import MINUTE
from magellan_sim.market.market import SimBar

# How far the path wanders between its anchors, as a fraction of the bar's range (the
# bridge's largest standard deviation), and how long a minute's wicks are.
WANDER = 0.12
WICK = 0.03
DECIMALS = 4


def path_seed(symbol: str, start: datetime) -> int:
    """The seed of the path of ``symbol``'s coarse bar starting at ``start``."""
    return zlib.crc32(f"{symbol}|{int(start.timestamp())}".encode())


def minute_path(bar: SimBar, starts: Sequence[datetime]) -> list[SimBar]:
    """Minute bars starting at ``starts`` (ascending) that retrace ``bar``.

    Returns one 1Min ``SimBar`` per start: the first opens at ``bar.open``, the last closes
    at ``bar.close``, the highest high is exactly ``bar.high`` and the lowest low exactly
    ``bar.low``; every price lies within [low, high]. Volume is split evenly (the remainder
    goes to the last minute), so the minutes add up to the bar's volume. An empty ``starts``
    gives an empty path.
    """
    n = len(starts)
    if n == 0:
        return []
    rng = random.Random(path_seed(bar.symbol, bar.t))
    points = _points(bar, n, rng)
    highs, lows = _wicks(bar, points, rng)
    volumes = _volumes(bar.volume, n)
    return [
        SimBar(
            symbol=bar.symbol,
            timeframe=MINUTE,
            t=start,
            open=points[k],
            high=highs[k],
            low=lows[k],
            close=points[k + 1],
            volume=volumes[k],
            trade_count=None,
            vwap=None,
        )
        for k, start in enumerate(starts)
    ]


def _points(bar: SimBar, n: int, rng: random.Random) -> list[float]:
    """n + 1 prices: point k opens minute k, point k + 1 closes it."""
    anchors = {0: bar.open, n: bar.close}
    interior = list(range(1, n))
    # The high and the low are reached at interior points when there are two of them (each
    # is then the close of one minute and the open of the next); otherwise a wick does it.
    if len(interior) >= 2:
        at_high, at_low = rng.sample(interior, 2)
        anchors[at_high] = bar.high
        anchors[at_low] = bar.low
    points = [0.0] * (n + 1)
    span = bar.high - bar.low
    keys = sorted(anchors)
    for a, b in itertools.pairwise(keys):
        points[a], points[b] = anchors[a], anchors[b]
        _bridge(points, a, b, span, rng)
    for k in range(n + 1):
        if k not in anchors:
            points[k] = _clamp(round(points[k], DECIMALS), bar)
    return points


def _bridge(points: list[float], a: int, b: int, span: float, rng: random.Random) -> None:
    """Fill points strictly between a and b: the straight line plus a Brownian bridge."""
    steps = b - a
    if steps < 2:
        return
    sigma = 2 * WANDER * span / math.sqrt(steps)  # the bridge's midpoint std is sigma*√steps/2
    walk = [0.0]
    for _ in range(steps):
        walk.append(walk[-1] + rng.gauss(0.0, sigma))
    for j in range(1, steps):
        line = points[a] + (points[b] - points[a]) * j / steps
        points[a + j] = line + walk[j] - walk[steps] * j / steps


def _wicks(bar: SimBar, points: list[float], rng: random.Random) -> tuple[list[float], list[float]]:
    n = len(points) - 1
    wick = WICK * (bar.high - bar.low)
    highs, lows = [], []
    for k in range(n):
        top, bottom = max(points[k], points[k + 1]), min(points[k], points[k + 1])
        # max/min with the body: a bar whose open or close lies outside its own range (bad
        # data) still gives minutes whose high and low contain their open and close
        highs.append(max(top, _clamp(round(top + abs(rng.gauss(0.0, wick)), DECIMALS), bar)))
        lows.append(min(bottom, _clamp(round(bottom - abs(rng.gauss(0.0, wick)), DECIMALS), bar)))
    # Without an interior anchor (one or two minutes), a wick reaches the extreme.
    if max(highs) < bar.high:
        highs[rng.randrange(n)] = bar.high
    if min(lows) > bar.low:
        lows[rng.randrange(n)] = bar.low
    return highs, lows


def _volumes(volume: int, n: int) -> list[int]:
    share, rest = divmod(max(volume, 0), n)
    return [share] * (n - 1) + [share + rest]


def _clamp(price: float, bar: SimBar) -> float:
    return min(max(price, bar.low), bar.high)
