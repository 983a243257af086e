"""Bad input, hypothesis-driven, through the daemon's real edges: config files, trade-update
frames, market-data bar frames and the REST responses of a misbehaving broker.

Each target is (a hypothesis strategy, a check). The check feeds one drawn input to the real
code and raises when the daemon would not survive it or let it through: an exception out of
the stream's frame handler (it would kill the consumer), a non-finite or non-positive price or
quantity in the ledger or in a bar handed on, a config that loads with an infinite value, a
REST call that fails with anything but the broker error taxonomy.

``run_fuzz`` runs every target for ``examples`` inputs (``make chaos``);
tests/chaos/test_fuzz.py runs the same targets with fewer inputs in ``make test``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import shutil
import tempfile
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgpack
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from pydantic import BaseModel

from magellan_daemon.adapters.alpaca.rest import AlpacaBroker
from magellan_daemon.adapters.alpaca.stream import bar_stream, trade_updates_stream
from magellan_daemon.adapters.bar_batch import BarBatch
from magellan_daemon.config.loading import load_config
from magellan_daemon.domain import ClientOrderId
from magellan_daemon.errors import BrokerError, ConfigError
from magellan_daemon.execution.events import EventSink
from magellan_daemon.execution.order_watch import OrderWatch
from magellan_daemon.ledger.store import Ledger
from magellan_daemon.ledger.tradelog import TradeLogWriter
from tests.e2e.harness import REPO

NOW = datetime(2024, 11, 15, 18, 45, tzinfo=UTC)
CIDS = ("mg-bt-MULN-20241115T1844-entry", "mg-bt-MULN-20241115T1844-ps-1")
EVENTS = (
    "new", "fill", "partial_fill", "canceled", "expired", "replaced", "rejected",
    "pending_new", "pending_cancel", "pending_replace", "order_cancel_rejected",
    "order_replace_rejected", "done_for_day", "stopped", "suspended", "calculated",
    "held", "trade_bust", "trade_correct", "accepted", "restated", "no_such_event",
)  # fmt: skip
# Values a broker or a socket should never send where a number or a word is expected.
WEIRD = st.one_of(
    st.none(),
    st.sampled_from(["", "NaN", "nan", "-Infinity", "Infinity", "1e999", "-5", "0", "abc", "1,5"]),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.text(max_size=12),
)


@dataclass
class FuzzResult:
    """Inputs tried per target, and every input that broke the daemon."""

    tried: Counter[str] = field(default_factory=Counter)
    crashes: list[str] = field(default_factory=list)


# -- config files ------------------------------------------------------------------------

TOML_VALUES = st.sampled_from(
    ["nan", "inf", "-inf", "-1", "0", "1e308", "99999999999999999999", '"text"', "true",
     "[]", "{}", '"*"', "-0.5", '""', "[1, 2]", "2024-11-15"]
)  # fmt: skip


@st.composite
def config_edits(draw: st.DrawFn) -> tuple[str, int, str]:
    """(file, line number, what to do with it): a value replaced, a line dropped or
    doubled, the file cut short, or bytes that are not TOML."""
    name = draw(st.sampled_from(sorted(p.name for p in (REPO / "configs").glob("*.toml"))))
    lines = (REPO / "configs" / name).read_text().splitlines()
    index = draw(st.integers(min_value=0, max_value=len(lines) - 1))
    how = draw(st.sampled_from(["value", "value", "value", "drop", "double", "cut", "garbage"]))
    if how == "value":
        return name, index, "value:" + draw(TOML_VALUES)
    return name, index, how


def check_config(edit: tuple[str, int, str]) -> None:
    """A bad config is refused with a ConfigError naming the field (exit 2), never loaded
    with an infinite or NaN number, and never anything else."""
    name, index, how = edit
    folder = Path(tempfile.mkdtemp(prefix="fuzz-config-"))
    try:
        for source in (REPO / "configs").glob("*.toml"):
            shutil.copy(source, folder / source.name)
        path = folder / name
        lines = path.read_text().splitlines()
        line = lines[index]
        if how.startswith("value:") and "=" in line and not line.lstrip().startswith("#"):
            key = line.split("=", 1)[0]
            lines[index] = f"{key}= {how.removeprefix('value:')}"
        elif how == "drop":
            del lines[index]
        elif how == "double":
            lines.insert(index, line)
        elif how == "cut":
            lines = [*lines[:index], line[: len(line) // 2]]
        elif how == "garbage":
            lines[index] = "\x00\xff = = [[["
        path.write_text("\n".join(lines) + "\n")
        try:
            config = load_config(folder / "magellan.toml")
        except ConfigError:
            return
        for strategy in config.strategies.values():
            _assert_finite(strategy.params, f"{name}: {strategy.name}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _assert_finite(model: BaseModel, where: str) -> None:
    for key, value in model:
        if isinstance(value, BaseModel):
            _assert_finite(value, f"{where}.{key}")
        elif isinstance(value, float) and not math.isfinite(value):
            raise AssertionError(f"config loaded with {where}.{key} = {value}")
        elif isinstance(value, dict):
            for item in value.values():
                if isinstance(item, BaseModel):
                    _assert_finite(item, f"{where}.{key}")


# -- trade-update frames -----------------------------------------------------------------


@st.composite
def trade_frames(draw: st.DrawFn) -> list[Any]:
    """A short sequence of trade_updates frames: plausible ones with fields broken, events
    for orders that are not ours, repeats and reorderings, and plain junk."""
    frames: list[Any] = []
    for _ in range(draw(st.integers(min_value=1, max_value=8))):
        if draw(st.integers(0, 9)) == 0:
            frames.append(draw(st.one_of(WEIRD, st.just({"data": None}), st.just({}))))
            continue
        qty = draw(st.sampled_from(["100", "40", "60", "0"]))
        order: dict[str, Any] = {
            "id": draw(st.sampled_from(["b-1", "b-2", "b-9"])),
            "client_order_id": draw(st.sampled_from([*CIDS, "not-ours-1"])),
            "symbol": "MULN",
            "side": draw(st.sampled_from(["buy", "sell"])),
            "status": draw(st.sampled_from(["new", "filled", "partially_filled", "canceled"])),
            "qty": "100",
            "filled_qty": qty,
            "filled_avg_price": "2.5",
            "updated_at": "2024-11-15T18:45:00Z",
        }
        data: dict[str, Any] = {
            "event": draw(st.sampled_from(EVENTS)),
            "execution_id": draw(st.sampled_from([None, "x-1", "x-2", "x-3"])),
            "timestamp": "2024-11-15T18:45:30.123456789Z",
            "price": "2.5",
            "qty": qty,
            "order": order,
        }
        for _ in range(draw(st.integers(0, 2))):  # break a field or two
            target = draw(st.sampled_from([order, data]))
            key = draw(st.sampled_from(sorted(target)))
            if draw(st.booleans()):
                target[key] = draw(WEIRD)
            else:
                del target[key]
        frames.append({"stream": "trade_updates", "data": data})
    if len(frames) > 1 and draw(st.booleans()):
        frames.append(frames[draw(st.integers(0, len(frames) - 1))])  # a repeat
    return draw(st.permutations(frames))


def check_trade_frames(frames: list[Any]) -> None:
    """Every frame goes through the real trade-updates handler into a real ledger: nothing
    escapes the handler, and what the ledger booked is finite, positive and adds up."""
    folder = Path(tempfile.mkdtemp(prefix="fuzz-trades-"))
    ledger = Ledger.open(folder / "ledger.sqlite")
    try:
        for cid, side, order_type in zip(CIDS, ("buy", "sell"), ("market", "stop"), strict=True):
            ledger.create_order(
                client_order_id=ClientOrderId(cid),
                account="main",
                strategy="bear_trap",
                symbol="MULN",
                side=side,
                order_type=order_type,
                qty=Decimal(100),
                stop_price=None if order_type == "market" else Decimal("2.2"),
                time_in_force="day",
                leg="entry" if side == "buy" else "protective_stop",
                signal_time=NOW - timedelta(minutes=1),
                intent_id=None,
                replaces=None,
                now=NOW,
            )
        sink = EventSink(
            ledger,
            TradeLogWriter(ledger, folder / "trades"),
            lambda strategy, update: None,
            OrderWatch(),
            lambda: NOW,
        )
        stream = trade_updates_stream(
            account="main",
            key="k",
            secret="s",
            paper=True,
            url=None,
            on_event=sink.apply,
            on_connected=lambda: None,
        )
        for frame in frames:
            stream._on_frame(frame)  # the handler the stream's consumer calls, frame by frame
        fills = ledger.fills()
        for fill in fills:
            qty, price = Decimal(fill["qty"]), Decimal(fill["price"])
            assert qty.is_finite() and qty > 0 and price.is_finite() and price > 0, fill
        for position in ledger.positions():
            assert position.qty.is_finite(), position
    finally:
        ledger.close()
        shutil.rmtree(folder, ignore_errors=True)


# -- market-data bar frames --------------------------------------------------------------


@st.composite
def bar_frames(draw: st.DrawFn) -> list[Any]:
    """Raw ``T: "b"`` frames: plausible bars with NaN, zero, negative or huge values, an
    inverted range, odd timestamps, missing fields; duplicated and out of order."""
    frames: list[Any] = []
    for minute in range(draw(st.integers(min_value=1, max_value=6))):
        t = NOW + timedelta(minutes=draw(st.integers(-3, 3)) + minute)
        frame: dict[str, Any] = {
            "T": "b",
            "S": "MULN",
            "t": t.isoformat().replace("+00:00", "Z"),
            "o": 2.5,
            "h": 2.6,
            "l": 2.4,
            "c": 2.55,
            "v": 1000,
        }
        for _ in range(draw(st.integers(0, 2))):
            key = draw(st.sampled_from(sorted(frame)))
            if draw(st.booleans()):
                frame[key] = draw(
                    st.one_of(
                        WEIRD,
                        st.sampled_from([float("nan"), 0.0, -2.5, 1e300, float("inf"), 1e-12]),
                    )
                )
            else:
                del frame[key]
        frames.append(frame)
    if draw(st.booleans()):
        frames.append(frames[0])
    return draw(st.permutations(frames))


def _msgpack(value: Any) -> bytes:
    """``value`` packed as a server would (an int msgpack cannot hold is sent as a float)."""

    def fit(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: fit(x) for k, x in v.items()}
        if isinstance(v, list):
            return [fit(x) for x in v]
        if isinstance(v, int) and not isinstance(v, bool) and not -(2**63) <= v < 2**64:
            return float(v)
        return v

    return msgpack.packb(fit(value), datetime=False)


def check_bar_frames(frames: list[Any]) -> None:
    """Every message goes through the real bar-stream handler (our bar socket's reader) as
    msgpack frames: each alone, all in one frame, and the frames' bytes cut short; nothing
    escapes it, and each bar it hands on is a real minute bar (finite positive prices, low
    <= open, close <= high, a finite non-negative volume, an aware timestamp)."""
    batches: list[BarBatch] = []
    stream = bar_stream(
        account="main",
        key="k",
        secret="s",
        feed="iex",
        url=None,
        symbols=["MULN"],
        on_bars=batches.append,
        on_connected=lambda: None,
    )
    whole = _msgpack(frames)
    packed = [_msgpack([frame]) for frame in frames]
    for data in (*packed, whole, whole[: len(whole) // 2], frames, b"", b"\x91\xc1"):
        stream._on_frame(data)  # the handler the stream's consumer calls, frame by frame
    handed = [bar for batch in batches for bar in batch.bars()]
    for bar in handed:
        prices = (bar.open, bar.high, bar.low, bar.close)
        assert all(math.isfinite(p) and p > 0 for p in prices), bar
        assert bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high, bar
        assert math.isfinite(bar.volume) and bar.volume >= 0, bar
        assert bar.t.tzinfo is not None, bar


# -- REST responses of a misbehaving broker ------------------------------------------------

ORDER = {
    "id": "b-1", "client_order_id": CIDS[0], "created_at": "2024-11-15T18:45:00Z",
    "updated_at": "2024-11-15T18:45:00Z", "submitted_at": "2024-11-15T18:45:00Z",
    "filled_at": None, "expired_at": None, "canceled_at": None, "failed_at": None,
    "replaced_at": None, "replaced_by": None, "replaces": None,
    "asset_id": "904837e3-3b76-47ec-b432-046db621571b", "symbol": "MULN",
    "asset_class": "us_equity", "notional": None, "qty": "100", "filled_qty": "0",
    "filled_avg_price": None, "order_class": "", "order_type": "market", "type": "market",
    "side": "buy", "time_in_force": "day", "limit_price": None, "stop_price": None,
    "status": "new", "extended_hours": False, "legs": None,
}  # fmt: skip
BODIES: dict[str, Any] = {
    "order": ORDER,
    "orders": [ORDER],
    "positions": [
        {"asset_id": ORDER["asset_id"], "symbol": "MULN", "exchange": "NASDAQ",
         "asset_class": "us_equity", "qty": "100", "qty_available": "100", "side": "long",
         "avg_entry_price": "2.5", "market_value": "250", "cost_basis": "250",
         "unrealized_pl": "0", "unrealized_plpc": "0", "current_price": "2.5",
         "lastday_price": "2.5", "change_today": "0"}
    ],
    "activities": [
        {"id": "a-1", "activity_type": "FILL", "transaction_time": "2024-11-15T18:46:00Z",
         "type": "fill", "price": "2.5", "qty": "100", "side": "buy", "symbol": "MULN",
         "leaves_qty": "0", "order_id": "b-1", "cum_qty": "100", "order_status": "filled"}
    ],
    "clock": {"timestamp": "2024-11-15T13:45:00-05:00", "is_open": True,
              "next_open": "2024-11-18T09:30:00-05:00", "next_close": "2024-11-15T16:00:00-05:00"},
    "calendar": [{"date": "2024-11-15", "open": "09:30", "close": "16:00",
                  "session_open": "0400", "session_close": "2000"}],
    "bars": {"bars": {"MULN": [{"t": "2024-11-15T18:44:00Z", "o": 2.5, "h": 2.6, "l": 2.4,
                                "c": 2.55, "v": 1000, "n": 10, "vw": 2.5}]},
             "next_page_token": None},
}  # fmt: skip
HTML = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"


@st.composite
def broker_replies(draw: st.DrawFn) -> tuple[str, int, str, bytes]:
    """(what is asked, HTTP status, content type, body): a right answer with a field broken
    or removed, cut short, an HTML error page, an empty body, or a JSON of another shape."""
    what = draw(st.sampled_from(sorted(BODIES)))
    status = draw(st.sampled_from([200, 200, 200, 200, 404, 422, 429, 500, 502, 503]))
    body = json.loads(json.dumps(BODIES[what]))
    target = body[0] if isinstance(body, list) else body
    if what == "bars":
        target = body["bars"]["MULN"][0]
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from(sorted(target)))
        if draw(st.booleans()):
            target[key] = draw(WEIRD)
        else:
            target.pop(key, None)
    try:
        text = json.dumps(body).encode()
    except ValueError:
        text = b"{}"
    how = draw(st.sampled_from(["json", "json", "cut", "html", "empty", "null", "list"]))
    if how == "cut":
        text = text[: draw(st.integers(0, max(0, len(text) - 1)))]
    elif how == "html":
        return what, status, "text/html", HTML
    elif how == "empty":
        text = b""
    elif how == "null":
        text = b"null"
    elif how == "list":
        text = b"[]" if not isinstance(body, list) else b"{}"
    return what, status, "application/json", text


class _MisbehavingBroker:
    """A loopback HTTP server answering every request with the reply it is told to."""

    def __init__(self) -> None:
        self.reply: tuple[int, str, bytes] = (200, "application/json", b"{}")
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        threading.Thread(target=self._serve, args=(ready,), daemon=True).start()
        ready.wait(10)

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._answer)
        runner = web.AppRunner(app)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        ready.set()
        self._loop.run_forever()

    async def _answer(self, request: web.Request) -> web.Response:
        status, content_type, body = self.reply
        return web.Response(status=status, body=body, headers={"Content-Type": content_type})


_SERVER: _MisbehavingBroker | None = None
CALLS: dict[str, Callable[[AlpacaBroker], Any]] = {
    "order": lambda b: b.order_by_client_id(CIDS[0]),
    "orders": lambda b: b.open_orders(),
    "positions": lambda b: b.positions(),
    "activities": lambda b: b.fill_activities(NOW - timedelta(days=1)),
    "clock": lambda b: b.market_clock(),
    "calendar": lambda b: b.sessions(NOW.date(), NOW.date()),
    "bars": lambda b: b.bars(["MULN"], "1Min", NOW - timedelta(hours=1), NOW),
}


def check_broker_reply(reply: tuple[str, int, str, bytes]) -> None:
    """Each broker read, answered badly, fails with the broker error taxonomy (so the
    caller's retry, lookup or fatal path applies) or returns finite numbers: never another
    exception, never a NaN."""
    global _SERVER
    if _SERVER is None:
        _SERVER = _MisbehavingBroker()
    what, status, content_type, body = reply
    _SERVER.reply = (status, content_type, body)
    broker = AlpacaBroker(
        account="main", key="k", secret="s", paper=True,
        trading_url=_SERVER.url, data_url=_SERVER.url, timeout_seconds=5,
    )  # fmt: skip
    try:
        result = asyncio.run(CALLS[what](broker))
    except BrokerError:
        return
    finally:
        broker.close()
    _assert_finite_numbers(result, what)


def _assert_finite_numbers(value: Any, where: str) -> None:
    if isinstance(value, Decimal):
        assert value.is_finite(), f"{where}: {value}"
    elif isinstance(value, float):
        assert math.isfinite(value), f"{where}: {value}"
    elif isinstance(value, list | tuple):
        for item in value:
            _assert_finite_numbers(item, where)
    elif isinstance(value, dict):
        for item in value.values():
            _assert_finite_numbers(item, where)
    elif hasattr(value, "__dataclass_fields__"):
        for name in value.__dataclass_fields__:
            _assert_finite_numbers(getattr(value, name), f"{where}.{name}")


# -- running -----------------------------------------------------------------------------

Target = tuple[st.SearchStrategy[Any], Callable[[Any], None]]
TARGETS: dict[str, Target] = {
    "config files": (config_edits(), check_config),
    "trade-update frames": (trade_frames(), check_trade_frames),
    "market-data bar frames": (bar_frames(), check_bar_frames),
    "REST replies of a misbehaving broker": (broker_replies(), check_broker_reply),
}


def fuzz_target(name: str, examples: int, seed: int, result: FuzzResult) -> None:
    """Run one target for ``examples`` inputs; a failing input (shrunk) is recorded."""
    strategy, check = TARGETS[name]

    @hypothesis_seed(seed)
    @settings(
        max_examples=examples,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(strategy)
    def prop(value: Any) -> None:
        result.tried[name] += 1
        check(value)

    try:
        prop()
    except Exception as exc:
        found = exc.exceptions if isinstance(exc, BaseExceptionGroup) else (exc,)
        result.crashes += [f"{name}: {type(e).__name__}: {str(e)[:400]}" for e in found]


def run_fuzz(examples: int, seed: int) -> FuzzResult:
    """Every target, ``examples`` inputs each."""
    result = FuzzResult()
    logging.disable(logging.CRITICAL)  # thousands of expected "dropped" warnings
    try:
        for name in TARGETS:
            fuzz_target(name, examples, seed, result)
    finally:
        logging.disable(logging.NOTSET)
    return result
