"""Hypothesis properties of Bear Trap over random bar sequences (NaN, zero-range and
zero-volume bars included) with random fills, partial fills, rejections and stop fills:
it never raises, never sells more than it holds, keeps the broker stop within the shares
held, and a snapshot restored mid-run behaves exactly like the original."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strategies.api.model import Bar, Intent, OrderUpdate, Step
from strategies.api.session import Session
from strategies.bear_trap.strategy import BearTrap, BearTrapParams

SESSION = Session(
    date=date(2024, 4, 2),
    open=datetime(2024, 4, 2, 13, 30, tzinfo=UTC),
    close=datetime(2024, 4, 2, 20, 0, tzinfo=UTC),
)
# Loose thresholds so random walks enter often and every exit path gets exercised.
LOOSE = BearTrapParams(
    min_drop_pct=0.02,
    min_wick_ratio=0.0,
    min_body_ratio=0.0,
    volume_multiple=0.0,
    atr_period=3,
    volume_window=3,
    time_stop_minutes=12,
    tp1_target_fraction=0.05,
)
PARAMS = st.sampled_from([LOOSE, BearTrapParams(universe=("*",))])

bar_specs = st.lists(
    st.tuples(
        st.integers(1, 3),  # minutes after the previous bar
        st.sampled_from(["ok", "ok", "ok", "ok", "nan", "zero_range", "zero_volume", "inf"]),
        st.floats(-0.15, 0.25),  # close return
        st.floats(0, 0.1),  # upper wick
        st.floats(0, 0.1),  # lower wick
        st.integers(0, 10_000),  # volume
        st.sampled_from(["AMC", "GME"]),
    ),
    min_size=30,
    max_size=120,
)
# What happens to each order: fill in one go, fill in two parts, or end unfilled.
fates = st.sampled_from(["fill", "fill", "split", "reject"])


def make_bars(specs: list, start_minute: int) -> list[Bar]:
    bars, price = [], {"AMC": 10.0, "GME": 30.0}
    t = SESSION.open + timedelta(minutes=start_minute)
    for gap, kind, ret, up, down, volume, symbol in specs:
        t += timedelta(minutes=gap)
        o = price[symbol]
        c = max(0.01, o * (1 + ret))
        h, low = max(o, c) * (1 + up), min(o, c) * (1 - down)
        v = float(volume)
        if kind == "nan":
            c = math.nan
        elif kind == "inf":
            h = math.inf
        elif kind == "zero_range":
            o = h = low = c
        elif kind == "zero_volume":
            v = 0.0
        if math.isfinite(c):
            price[symbol] = c
        bars.append(
            Bar(symbol=symbol, timeframe="1Min", t=t, open=o, high=h, low=low, close=c, volume=v)
        )
    return bars


class Broker:
    """Plays the router and the broker for several strategy copies run in lockstep."""

    def __init__(self, data: st.DataObject) -> None:
        self.data = data
        self.stops: dict[str, dict] = {}

    def check(self, bt: BearTrap, intents: tuple[Intent, ...]) -> None:
        """Every sell is for shares held; the stop plus the sells never exceed them."""
        selling: dict[str, int] = {}
        for i in intents:
            if i.action == "sell":
                assert i.qty is not None and 0 < i.qty <= bt.position(i.symbol), i
                selling[i.symbol] = selling.get(i.symbol, 0) + i.qty
            if i.action in ("place_stop", "replace_stop"):
                assert i.qty is not None and 0 < i.qty <= bt.position(i.symbol), i
                assert i.stop_price is not None and math.isfinite(i.stop_price)
        for symbol, qty in selling.items():
            assert qty <= bt.position(symbol)

    def run(self, bots: list[BearTrap], bars: list[Bar], restore_at: int) -> None:
        for n, bar in enumerate(bars):
            if n == restore_at:
                snap = orjson.loads(orjson.dumps(bots[0].snapshot()))
                clone = BearTrap(bots[0].params, state=snap)
                assert clone.snapshot() == bots[0].snapshot()
                bots = [bots[0], clone]
            self.stop_fill(bots, bar)
            steps = [b.on_bar(bar, session=SESSION) for b in bots]
            assert all(s == steps[0] for s in steps)
            self.execute(bots, steps[0], bar)

    def stop_fill(self, bots: list[BearTrap], bar: Bar) -> None:
        stop = self.stops.get(bar.symbol)
        if stop is None or not bar.low <= stop["price"] or not self.data.draw(st.booleans()):
            return
        del self.stops[bar.symbol]
        self.send(
            bots, stop["intent"], "sell", "fill", stop["qty"], stop["qty"], bar, "protective_stop"
        )

    def send(
        self,
        bots: list[BearTrap],
        intent: Intent,
        side: str,
        kind: str,
        qty: int,
        filled: int,
        bar: Bar,
        leg: str | None = None,
    ) -> None:
        upd = OrderUpdate(
            strategy="bear_trap",
            symbol=intent.symbol,
            leg=leg or intent.leg,
            signal_time=intent.signal_time,
            side=side,  # type: ignore[arg-type]
            kind=kind,  # type: ignore[arg-type]
            time=bar.t + timedelta(minutes=1),
            qty=qty,
            price=bar.close if math.isfinite(bar.close) else 1.0,
            filled_qty=filled,
        )
        steps = [b.on_order_update(upd) for b in bots]
        assert all(s == steps[0] for s in steps)
        self.execute(bots, steps[0], bar)

    def execute(self, bots: list[BearTrap], step: Step, bar: Bar) -> None:
        self.check(bots[0], step.intents)
        for i in step.intents:
            if i.action == "place_stop":
                self.stops[i.symbol] = {"intent": i, "qty": i.qty, "price": i.stop_price}
            elif i.action == "replace_stop" and i.symbol in self.stops:
                self.stops[i.symbol].update(qty=i.qty, price=i.stop_price)
            elif i.action == "cancel_stop":
                self.stops.pop(i.symbol, None)
            elif i.action in ("buy", "sell"):
                self.market(bots, i, bar)

    def market(self, bots: list[BearTrap], i: Intent, bar: Bar) -> None:
        qty = i.qty if i.qty is not None else self.data.draw(st.integers(1, 500))
        fate = self.data.draw(fates)
        if fate == "reject":
            self.send(bots, i, i.action, "rejected", 0, 0, bar)
        elif fate == "split" and qty > 1:
            self.send(bots, i, i.action, "fill", qty // 2, qty // 2, bar)
            self.send(bots, i, i.action, "fill", qty - qty // 2, qty, bar)
        else:
            self.send(bots, i, i.action, "fill", qty, qty, bar)


@settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    params=PARAMS,
    specs=bar_specs,
    start=st.sampled_from([0, 200, 360]),
    restore_at=st.integers(0, 120),
    data=st.data(),
)
def test_random_bars_and_fills(
    params: BearTrapParams, specs: list, start: int, restore_at: int, data: st.DataObject
) -> None:
    bt = BearTrap(params)
    broker = Broker(data)
    broker.run([bt], make_bars(specs, start), restore_at)
    for symbol in ("AMC", "GME"):
        assert bt.position(symbol) >= 0
        stop = broker.stops.get(symbol)
        if stop is not None:
            assert stop["qty"] <= bt.position(symbol)
    orjson.dumps(bt.snapshot())  # always serialisable
