"""The RSI rule on backtrader 1.9.78 (runs in bench/.venv-backtrader; bench/bench_peers.py).

The rule is ours (strategies/lib/hysteresis.py with bench/configs/hourly_swing_1min.toml):
RSI(14) on 1Min closes with EMA averages (alpha = 2 / (n + 1)) seeded by the first delta,
trusted from the 42nd close (3 * period); flat and RSI > 60: buy 100 shares at market; long
and RSI < 40: sell all at market. Orders fill at the next bar's open (backtrader's default
for a market order, and what our simulator does). Only regular-session bars are fed (the
sessions file from the driver: our NYSE calendar), because ours never feeds the others to
the RSI and fills an order sent on the session's last bar at the next session's open.

    python bench/peers/backtrader_rsi.py --bars DIR --sessions FILE --fills FILE
        --mode runonce|next [--symbols A,B] [--start D] [--end D]

Prints one JSON line: engine, mode, bars, trades, seconds (cerebro.run), load_seconds,
fills (the fills CSV).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import backtrader as bt
from regular_bars import load_sessions, regular_bars

PERIOD = 14
WARMUP = 3 * PERIOD  # ours: RSI.ready after 3 * period closes
UPPER, LOWER, SHARES = 60.0, 40.0, 100
ALPHA = 2.0 / (PERIOD + 1)


class EmaRsi(bt.Indicator):
    """Our RSI: EMA averages seeded by the first delta (not backtrader's SMA-seeded RSI,
    which would give other values for the first few hundred bars)."""

    lines = ("rsi",)

    def __init__(self) -> None:
        self.addminperiod(WARMUP)
        self._prev = math.nan
        self._gain = math.nan
        self._loss = math.nan
        self._fed = 0

    def _update(self, close: float) -> float:
        prev, self._prev = self._prev, close
        if math.isnan(prev):
            return math.nan
        delta = close - prev
        gain = delta if delta > 0.0 else 0.0
        loss = -delta if delta < 0.0 else 0.0
        if math.isnan(self._gain):
            self._gain, self._loss = gain, loss
        else:
            # The same operation order as ours (pandas' adjust=False recursion).
            keep = 1.0 - ALPHA
            self._gain = (keep * self._gain + ALPHA * gain) / (keep + ALPHA)
            self._loss = (keep * self._loss + ALPHA * loss) / (keep + ALPHA)
        if self._loss == 0.0:
            return 50.0 if self._gain == 0.0 else 100.0
        return 100.0 - 100.0 / (1.0 + self._gain / self._loss)

    # next() mode: one bar at a time (warm-up bars too, so the state sees every close).
    # backtrader calls an indicator's next() at every tick of the strategy's clock, also
    # when another symbol's feed moved and this one did not: a close is fed once.
    def prenext(self) -> None:
        n = len(self)
        if n != self._fed:
            self._fed = n
            self.lines.rsi[0] = self._update(self.data.close[0])

    def next(self) -> None:
        self.prenext()

    # runonce mode: the whole array in one pass; backtrader calls preonce, oncestart and
    # once on consecutive ranges, so one running state serves them all.
    def _run(self, start: int, end: int) -> None:
        closes = self.data.close.array
        out = self.lines.rsi.array
        for i in range(start, end):
            out[i] = self._update(closes[i])

    def preonce(self, start: int, end: int) -> None:
        self._run(start, end)

    def once(self, start: int, end: int) -> None:
        self._run(start, end)


class RsiRule(bt.Strategy):
    """Per symbol: flat and RSI > 60 buys 100; long and RSI < 40 sells all; no second order
    while one is working (ours: the pending marker)."""

    params = (("first_rows", None),)

    def __init__(self) -> None:
        self.rsi = {d: EmaRsi(d) for d in self.datas}
        self.seen = {d: 0 for d in self.datas}
        self.working: dict[Any, bt.Order] = {}
        self.fills: list[tuple[str, str, str, int, float]] = []

    def notify_order(self, order: bt.Order) -> None:
        if order.status == order.Completed:
            t = bt.num2date(order.executed.dt).strftime("%Y-%m-%dT%H:%M:%SZ")
            side = "buy" if order.isbuy() else "sell"
            name = order.data._name
            self.fills.append((name, t, side, abs(int(order.executed.size)), order.executed.price))
        if order.status in (order.Completed, order.Canceled, order.Margin, order.Rejected):
            self.working.pop(order.data, None)

    def prenext(self) -> None:
        # With one feed per symbol the strategy's minimum period is the slowest feed's (MULN
        # starts in November): every symbol is decided on its own from its own warm-up.
        self.next()

    def next(self) -> None:
        first_rows = self.p.first_rows
        for d in self.datas:
            n = len(d)
            if n == self.seen[d]:
                continue  # no new bar of this symbol at this minute
            self.seen[d] = n
            if n < WARMUP or n <= first_rows[d._name] or d in self.working:
                continue
            rsi = self.rsi[d].rsi[0]
            held = self.getposition(d).size
            if rsi > UPPER and held == 0:
                self.working[d] = self.buy(data=d, size=SHARES)
            elif rsi < LOWER and held > 0:
                self.working[d] = self.sell(data=d, size=held)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=Path, required=True, help="the 1Min folder")
    parser.add_argument("--sessions", type=Path, required=True)
    parser.add_argument("--fills", type=Path, required=True)
    parser.add_argument("--mode", choices=("runonce", "next"), required=True)
    parser.add_argument("--symbols", default="")
    parser.add_argument("--start", type=date.fromisoformat, default=None)
    parser.add_argument("--end", type=date.fromisoformat, default=None)
    args = parser.parse_args()

    began = time.perf_counter()
    sessions = load_sessions(args.sessions)
    files = sorted(args.bars.glob("*.csv.gz"))
    wanted = set(args.symbols.split(",")) if args.symbols else None
    cerebro = bt.Cerebro(runonce=args.mode == "runonce", preload=True, stdstats=False)
    cerebro.broker.setcash(100_000.0)
    bars = 0
    first_rows = {}
    for file in files:
        symbol = file.name.split(".")[0]
        if wanted is not None and symbol not in wanted:
            continue
        df = regular_bars(file, sessions, args.start, args.end)
        if df.empty:
            continue  # no bars in the window (MULN before November): backtrader needs one
        first_rows[symbol] = df.attrs["first_trading_row"]
        bars += len(df)
        cerebro.adddata(bt.feeds.PandasData(dataname=df, openinterest=None), name=symbol)
    cerebro.addstrategy(RsiRule, first_rows=first_rows)
    load_seconds = time.perf_counter() - began

    began = time.perf_counter()
    (strategy,) = cerebro.run()
    seconds = time.perf_counter() - began

    args.fills.parent.mkdir(parents=True, exist_ok=True)
    with args.fills.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["symbol", "bar", "side", "qty", "price"])
        out.writerows(sorted(strategy.fills))
    print(
        json.dumps(
            {
                "engine": f"backtrader {bt.__version__}",
                "mode": args.mode,
                "bars": bars,
                "trades": len(strategy.fills),
                "seconds": seconds,
                "load_seconds": load_seconds,
                "fills": str(args.fills),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
