"""The RSI rule on NautilusTrader 1.221 (runs in bench/.venv-nautilus; bench/bench_peers.py).

A ``BacktestEngine`` with one cash account on one venue, an ``Equity`` per symbol, the
regular-session 1Min bars (bench/peers/regular_bars.py) and a ``Strategy`` that submits
market orders. The rule is ours (strategies/lib/hysteresis.py): RSI(14) on closes with EMA
averages (alpha = 2 / (n + 1)) seeded by the first delta, trusted from the 42nd close; flat
and RSI > 60: buy 100; long and RSI < 40: sell all; no second order while one is working.

The RSI is computed here, in the strategy, not with Nautilus' ``RelativeStrengthIndex``:
that one feeds a zero change on its first bar into both averages and reads 0..1, so its
values near the bands differ from ours. Nautilus fills a market order on bar data at the
price its book holds when the order arrives: the close of the bar that made the signal
(the bar is replayed as open, high, low, close before the strategy sees it). Ours fills at
the next bar's open; Nautilus has no setting for that, so those prices differ (the driver
compares the signals and says so).

    python bench/peers/nautilus_rsi.py --bars DIR --sessions FILE --fills FILE
        [--symbols A,B] [--start D] [--end D]

Prints one JSON line: engine, mode, bars, trades, seconds (engine.run), load_seconds, fills.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

import nautilus_trader
import pandas as pd
from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
from nautilus_trader.config import LoggingConfig, StrategyConfig
from nautilus_trader.model.currencies import USD
from nautilus_trader.model.data import Bar, BarType
from nautilus_trader.model.enums import AccountType, OmsType, OrderSide
from nautilus_trader.model.events import OrderCanceled, OrderDenied, OrderFilled, OrderRejected
from nautilus_trader.model.identifiers import InstrumentId, Symbol, Venue
from nautilus_trader.model.instruments import Equity
from nautilus_trader.model.objects import Money, Price, Quantity
from nautilus_trader.persistence.wranglers import BarDataWrangler
from nautilus_trader.trading.strategy import Strategy
from regular_bars import load_sessions, regular_bars

PERIOD = 14
WARMUP = 3 * PERIOD  # ours: RSI.ready after 3 * period closes
UPPER, LOWER, SHARES = 60.0, 40.0, 100
ALPHA = 2.0 / (PERIOD + 1)
KEEP = 1.0 - ALPHA
VENUE = Venue("XNAS")
PRICE_DECIMALS = 6  # the shared files carry up to 6 decimals (sub-penny prices)
MINUTE_NS = 60 * 1_000_000_000


class RsiRuleConfig(StrategyConfig, frozen=True):
    """The bar types to trade and, per symbol, the first bar time (ns) that may trade."""

    bar_types: tuple[str, ...] = ()
    trade_from_ns: int = 0


class RsiRule(Strategy):
    """Our RSI hysteresis per symbol, with market orders."""

    def __init__(self, config: RsiRuleConfig) -> None:
        super().__init__(config)
        self.bar_types = [BarType.from_str(b) for b in config.bar_types]
        self.trade_from_ns = config.trade_from_ns
        # symbol -> [bars, prev_close, avg_gain, avg_loss]
        self.rsi: dict[InstrumentId, list[float]] = {}
        self.held: dict[InstrumentId, int] = {}
        self.working: set[InstrumentId] = set()
        self.fills: list[tuple[str, str, str, int, float]] = []

    def on_start(self) -> None:
        for bar_type in self.bar_types:
            self.rsi[bar_type.instrument_id] = [0, 0.0, -1.0, -1.0]
            self.held[bar_type.instrument_id] = 0
            self.subscribe_bars(bar_type)

    def on_bar(self, bar: Bar) -> None:
        iid = bar.bar_type.instrument_id
        st = self.rsi[iid]
        close = bar.close.as_double()
        st[0] += 1
        if st[0] == 1:
            st[1] = close
            return
        delta = close - st[1]
        st[1] = close
        gain = delta if delta > 0.0 else 0.0
        loss = -delta if delta < 0.0 else 0.0
        if st[2] < 0.0:
            st[2], st[3] = gain, loss
        else:
            # The same operation order as ours (pandas' adjust=False recursion).
            st[2] = (KEEP * st[2] + ALPHA * gain) / (KEEP + ALPHA)
            st[3] = (KEEP * st[3] + ALPHA * loss) / (KEEP + ALPHA)
        if st[0] < WARMUP or bar.ts_event < self.trade_from_ns or iid in self.working:
            return
        if st[3] == 0.0:
            rsi = 50.0 if st[2] == 0.0 else 100.0
        else:
            rsi = 100.0 - 100.0 / (1.0 + st[2] / st[3])
        held = self.held[iid]
        if rsi > UPPER and held == 0:
            side, qty = OrderSide.BUY, SHARES
        elif rsi < LOWER and held > 0:
            side, qty = OrderSide.SELL, held
        else:
            return
        self.working.add(iid)
        order = self.order_factory.market(iid, side, Quantity.from_int(qty))
        self.submit_order(order)

    def on_order_filled(self, event: OrderFilled) -> None:
        iid = event.instrument_id
        qty = int(event.last_qty.as_double())
        buy = event.order_side == OrderSide.BUY
        self.held[iid] += qty if buy else -qty
        order = self.cache.order(event.client_order_id)
        if not order.is_closed:
            # The venue's book holds a quarter of the bar's volume per price point, so a
            # thin bar fills 100 shares in parts; ours fills the order whole. One fill per
            # order (its quantity and average price) is what is compared.
            return
        # ts_event is the bar's end (the bars are stamped at their completion, as ours steps
        # them): the bar that filled it starts a minute earlier.
        bar = datetime.fromtimestamp((event.ts_event - MINUTE_NS) / 1e9, UTC)
        stamp = bar.strftime("%Y-%m-%dT%H:%M:%SZ")
        side = "buy" if buy else "sell"
        filled = int(order.filled_qty.as_double())
        self.fills.append((iid.symbol.value, stamp, side, filled, float(order.avg_px)))
        self.working.discard(iid)

    def on_order_rejected(self, event: OrderRejected) -> None:
        self.working.discard(event.instrument_id)

    def on_order_denied(self, event: OrderDenied) -> None:
        self.working.discard(event.instrument_id)

    def on_order_canceled(self, event: OrderCanceled) -> None:
        self.working.discard(event.instrument_id)


def equity(symbol: str) -> Equity:
    """A US equity on the one venue, priced to the files' precision, no fees."""
    return Equity(
        instrument_id=InstrumentId(Symbol(symbol), VENUE),
        raw_symbol=Symbol(symbol),
        currency=USD,
        price_precision=PRICE_DECIMALS,
        price_increment=Price(10**-PRICE_DECIMALS, PRICE_DECIMALS),
        lot_size=Quantity.from_int(1),
        ts_event=0,
        ts_init=0,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=Path, required=True, help="the 1Min folder")
    parser.add_argument("--sessions", type=Path, required=True)
    parser.add_argument("--fills", type=Path, required=True)
    parser.add_argument("--symbols", default="")
    parser.add_argument("--start", type=date.fromisoformat, default=None)
    parser.add_argument("--end", type=date.fromisoformat, default=None)
    args = parser.parse_args()

    began = time.perf_counter()
    sessions = load_sessions(args.sessions)
    wanted = set(args.symbols.split(",")) if args.symbols else None
    engine = BacktestEngine(
        BacktestEngineConfig(trader_id="BENCH-001", logging=LoggingConfig(log_level="ERROR"))
    )
    engine.add_venue(
        venue=VENUE,
        oms_type=OmsType.NETTING,
        account_type=AccountType.CASH,
        base_currency=USD,
        starting_balances=[Money(100_000, USD)],
    )
    bars = 0
    bar_types = []
    for file in sorted(args.bars.glob("*.csv.gz")):
        symbol = file.name.split(".")[0]
        if wanted is not None and symbol not in wanted:
            continue
        df = regular_bars(file, sessions, None, args.end)
        if df.empty:
            continue
        # Stamped at the bar's completion, the instant ours evaluates it.
        df.index = pd.DatetimeIndex(df.index + pd.Timedelta(minutes=1), tz="UTC")
        instrument = equity(symbol)
        bar_type = BarType.from_str(f"{instrument.id}-1-MINUTE-LAST-EXTERNAL")
        engine.add_instrument(instrument)
        engine.add_data(BarDataWrangler(bar_type, instrument).process(df))
        bars += len(df)
        bar_types.append(str(bar_type))
    trade_from = 0
    if args.start is not None:
        first = sessions.loc[sessions.index >= args.start, "open"]
        trade_from = 0 if first.empty else int(first.iloc[0].value) + MINUTE_NS
    strategy = RsiRule(RsiRuleConfig(bar_types=tuple(bar_types), trade_from_ns=trade_from))
    engine.add_strategy(strategy)
    load_seconds = time.perf_counter() - began

    began = time.perf_counter()
    engine.run()
    seconds = time.perf_counter() - began

    args.fills.parent.mkdir(parents=True, exist_ok=True)
    with args.fills.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["symbol", "bar", "side", "qty", "price"])
        out.writerows(sorted(strategy.fills))
    print(
        json.dumps(
            {
                "engine": f"NautilusTrader {nautilus_trader.__version__}",
                "mode": "BacktestEngine, market orders",
                "bars": bars,
                "trades": len(strategy.fills),
                "seconds": seconds,
                "load_seconds": load_seconds,
                "fills": str(args.fills),
            }
        )
    )
    engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
