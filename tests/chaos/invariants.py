"""The invariants a chaos scenario must keep, read from the broker's own orders, activities
and positions and from the daemon's ledger and CSV files.

Each check returns human-readable violations (an empty list when it holds), so one run
reports every broken invariant at once instead of stopping at the first.
"""

from __future__ import annotations

import csv
import itertools
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.e2e.harness import Daemon, Sim

OPEN_STATUSES = frozenset(
    {"new", "accepted", "partially_filled", "pending_new", "pending_cancel", "pending_replace"}
)
ZERO = Decimal(0)


@dataclass(frozen=True)
class BrokerView:
    """One read of the broker: its orders, FILL activities and positions."""

    orders: list[dict[str, Any]]
    fills: list[dict[str, Any]]
    positions: dict[str, Decimal]

    @classmethod
    def read(cls, sim: Sim) -> BrokerView:
        """Everything the simulator knows about the daemon's account, now."""
        return cls(
            orders=sim.orders(),
            fills=sim.fills(),
            positions={s: Decimal(str(q)) for s, q in sim.positions().items() if q},
        )


def final_violations(
    sim: Sim, daemon: Daemon, now: datetime, *, refusals: bool = False
) -> list[str]:
    """Every invariant that must hold once the daemon stopped cleanly and the ledger has
    caught up with the broker (fills, positions, orders, intents, the log). ``refusals``:
    the scenario made the broker refuse orders, so the position guard's UNPROTECTED line is
    the loud answer required of it (its time bound is ``bear_trap_stop_gaps``'s)."""
    broker = BrokerView.read(sim)
    return [
        *one_order_per_intent(broker, daemon),
        *fills_exactly_once(broker, daemon),
        *positions_add_up(broker, daemon),
        *intents_accounted_for(daemon, now),
        *log_clean(daemon, refusals=refusals),
    ]


def one_order_per_intent(broker: BrokerView, daemon: Daemon) -> list[str]:
    """No two broker orders for one intent: by ``client_order_id``, and by content (the same
    strategy, symbol, side, leg and signal time under another id). Replacements of one
    protective stop share their intent and are one chain, so stops are checked as chains:
    at most one of them open. Every broker order is one the ledger wrote before sending."""
    problems = []
    counts = Counter(o["client_order_id"] for o in broker.orders)
    problems += [
        f"client_order_id {cid} at the broker {n} times" for cid, n in counts.items() if n > 1
    ]
    rows = {r["client_order_id"]: r for r in daemon.query("SELECT * FROM orders")}
    by_content: dict[tuple[str, ...], list[str]] = defaultdict(list)
    open_stops: dict[tuple[str, str], list[str]] = defaultdict(list)
    for order in broker.orders:
        cid = order["client_order_id"]
        row = rows.get(cid)
        if row is None:
            problems.append(f"broker order {cid} is not in the ledger")
            continue
        if row["leg"] == "protective_stop":
            if order["status"] in OPEN_STATUSES and order["status"] != "pending_replace":
                open_stops[(row["strategy"], row["symbol"])].append(cid)
            continue
        key = (row["strategy"], row["symbol"], row["side"], row["leg"], row["signal_time"])
        by_content[key].append(cid)
    by_id = {o["client_order_id"]: o for o in broker.orders}
    for key, cids in by_content.items():
        problems += _attempts_one_at_a_time(key, [by_id[c] for c in cids])
    problems += [f"two open stops for {k}: {v}" for k, v in open_stops.items() if len(v) > 1]
    return problems


_ENDED_UNFILLED = ("canceled", "expired", "rejected")


def _attempts_one_at_a_time(key: tuple[str, ...], orders: list[dict[str, Any]]) -> list[str]:
    """A decision decided again after its order ended unfilled goes out as a new attempt
    (``-eod-2``): legal only when each earlier attempt had ended, not filled whole, before
    the next was submitted; two attempts working at once would be one intent sent twice."""
    chain = sorted(orders, key=lambda o: o["submitted_at"] or "")
    problems = []
    for earlier, later in itertools.pairwise(chain):
        ended = earlier.get("canceled_at") or earlier.get("expired_at") or earlier.get("failed_at")
        whole = Decimal(earlier["filled_qty"]) >= Decimal(earlier["qty"])
        if earlier["status"] not in _ENDED_UNFILLED or whole or ended is None:
            problems.append(f"one intent {key} sent as {[o['client_order_id'] for o in chain]}")
        elif _t(later["submitted_at"]) < _t(ended):
            problems.append(
                f"one intent {key}: {later['client_order_id']} sent before "
                f"{earlier['client_order_id']} ended"
            )
    return problems


def fills_exactly_once(broker: BrokerView, daemon: Daemon) -> list[str]:
    """Every broker fill is in the ledger and in the CSV exactly once, with its quantity and
    price; nothing is in either that the broker did not fill."""
    problems = []
    expected = Counter(
        (f["order_id"], Decimal(f["cum_qty"]), Decimal(f["qty"]), Decimal(f["price"]))
        for f in broker.fills
    )
    ledger = Counter(
        (f["broker_order_id"], Decimal(f["cum_qty"]), Decimal(f["qty"]), Decimal(f["price"]))
        for f in daemon.query("SELECT * FROM fills WHERE voided = 0")
    )
    for key in expected | ledger:
        if expected[key] != ledger[key]:
            problems.append(f"fill {key}: broker has it {expected[key]}x, ledger {ledger[key]}x")
    csv_rows = Counter(
        (r["order_id"], Decimal(r["qty"]), Decimal(r["price"])) for r in _csv_rows(daemon)
    )
    want = Counter((o, q, p) for (o, _, q, p), n in expected.items() for _ in range(n))
    for key in want | csv_rows:
        if want[key] != csv_rows[key]:
            problems.append(f"fill {key}: broker has it {want[key]}x, CSV {csv_rows[key]}x")
    return problems


def positions_add_up(broker: BrokerView, daemon: Daemon) -> list[str]:
    """Each strategy's ledger position is what its fills imply; per symbol the strategies
    sum to the broker's position; no strategy is ever short."""
    problems = []
    implied: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for fill in daemon.query("SELECT * FROM fills WHERE voided = 0"):
        sign = 1 if fill["side"] == "buy" else -1
        implied[(fill["strategy"], fill["symbol"])] += sign * Decimal(fill["qty"])
    booked = {
        (r["strategy"], r["symbol"]): Decimal(r["qty"])
        for r in daemon.query("SELECT strategy, symbol, qty FROM positions")
    }
    for key in implied.keys() | booked.keys():
        if implied.get(key, ZERO) != booked.get(key, ZERO):
            problems.append(
                f"{key}: ledger position {booked.get(key, ZERO)}, fills imply "
                f"{implied.get(key, ZERO)}"
            )
        if booked.get(key, ZERO) < 0:
            problems.append(f"{key}: strategy short {booked[key]}")
    net: dict[str, Decimal] = defaultdict(Decimal)
    for (_, symbol), qty in booked.items():
        net[symbol] += qty
    for symbol in net.keys() | broker.positions.keys():
        if net.get(symbol, ZERO) != broker.positions.get(symbol, ZERO):
            problems.append(
                f"{symbol}: strategies hold {net.get(symbol, ZERO)}, broker "
                f"{broker.positions.get(symbol, ZERO)}"
            )
    return problems


def bear_trap_stop_gaps(
    broker: BrokerView,
    up: list[tuple[datetime, datetime]],
    known: dict[tuple[str, Decimal], datetime],
    allowance: timedelta,
) -> list[str]:
    """Every Bear Trap share the broker holds is covered by an open Bear Trap sell at the
    broker (its resting stop, or between the stop's confirmed cancel and the exit's fill, the
    exit), except for at most ``allowance`` of the daemon's uptime (``up``: intervals from
    READY to SIGKILL or stop) after the shares became uncovered, counted from when the
    daemon knew of their fill (``known``: (broker order id, cum qty) -> when its ledger had
    it; shares it could not know of yet are not its to protect).

    Reconstructed from the broker's own history: positions from the FILL activities, each
    sell's open interval from its timestamps (a replacement counts from the moment the order
    it replaces is ``replaced``: until then the pair holds the old order's shares), and its
    remainder at each instant from its fills."""
    ours = {o["id"]: o for o in broker.orders if o["client_order_id"].startswith("mg-bt-")}
    fills = [_as_known(f, known) for f in broker.fills if f["order_id"] in ours]
    problems = []
    for symbol in sorted({f["symbol"] for f in fills}):
        sells = [o for o in ours.values() if o["symbol"] == symbol and o["side"] == "sell"]
        spans = {o["id"]: _open_span(o, ours) for o in sells}
        mine = [f for f in fills if f["symbol"] == symbol]
        marks = sorted(
            {_t(f["transaction_time"]) for f in mine}
            | {t for span in spans.values() for t in span if t is not None}
            | {t for interval in up for t in interval}
        )
        uncovered_since: datetime | None = None
        for t in marks:
            held = sum((_signed(f) for f in mine if _t(f["transaction_time"]) <= t), Decimal(0))
            covered = sum(
                (_left(o, mine, t) for o in sells if _is_open(spans[o["id"]], t)), Decimal(0)
            )
            if held > covered:
                uncovered_since = uncovered_since or t
                exposed = _uptime(up, uncovered_since, t)
                if exposed > allowance:
                    problems.append(
                        f"bear_trap {symbol}: {held - covered} of {held} shares without a "
                        f"resting stop from {uncovered_since} to {t} ({exposed} of uptime)"
                    )
                    uncovered_since = None  # one report per gap
            else:
                uncovered_since = None
    return problems


def _as_known(fill: dict[str, Any], known: dict[tuple[str, Decimal], datetime]) -> dict[str, Any]:
    """The fill as the daemon saw it: at the later of its time and when its ledger had it
    (a buy it has not heard of yet raises no position of its own to protect)."""
    at = _t(fill["transaction_time"])
    seen = known.get((fill["order_id"], Decimal(fill["cum_qty"])))
    if fill["side"] == "buy" and seen is not None and seen > at:
        return {**fill, "transaction_time": seen.isoformat()}
    return fill


def _open_span(
    order: dict[str, Any], ours: dict[str, dict[str, Any]]
) -> tuple[datetime, datetime | None]:
    start = _t(order["submitted_at"])
    replaced = ours.get(order["replaces"] or "")
    if replaced is not None and replaced["replaced_at"]:
        start = max(start, _t(replaced["replaced_at"]))
    ends = [order[k] for k in ("filled_at", "canceled_at", "replaced_at", "expired_at")]
    found = [_t(e) for e in ends if e]
    if order["status"] == "rejected":
        return start, start
    return start, min(found) if found else None


def _is_open(span: tuple[datetime, datetime | None], t: datetime) -> bool:
    start, end = span
    return start <= t and (end is None or t < end)


def _left(order: dict[str, Any], fills: list[dict[str, Any]], t: datetime) -> Decimal:
    done = sum(
        (
            Decimal(f["qty"])
            for f in fills
            if f["order_id"] == order["id"] and _t(f["transaction_time"]) <= t
        ),
        Decimal(0),
    )
    return Decimal(order["qty"]) - done


def _signed(fill: dict[str, Any]) -> Decimal:
    return Decimal(fill["qty"]) * (1 if fill["side"] == "buy" else -1)


def _uptime(up: list[tuple[datetime, datetime]], start: datetime, end: datetime) -> timedelta:
    total = timedelta(0)
    for a, b in up:
        overlap = min(b, end) - max(a, start)
        if overlap > timedelta(0):
            total += overlap
    return total


def bear_trap_flat_after_close(broker: BrokerView, daemon: Daemon) -> list[str]:
    """After the close Bear Trap holds nothing and no Bear Trap order rests at the broker."""
    problems = [
        f"bear_trap holds {r['qty']} {r['symbol']} after the close"
        for r in daemon.query("SELECT symbol, qty FROM positions WHERE strategy='bear_trap'")
        if Decimal(r["qty"]) != 0
    ]
    problems += [
        f"bear_trap order {o['client_order_id']} still {o['status']} after the close"
        for o in broker.orders
        if o["client_order_id"].startswith("mg-bt-") and o["status"] in OPEN_STATUSES
    ]
    return problems


def broker_flat(broker: BrokerView) -> list[str]:
    """Nothing held at the broker (after the close, when only intraday strategies trade)."""
    return [
        f"{qty} {symbol} held at the broker after the close"
        for symbol, qty in sorted(broker.positions.items())
    ]


def refusals_logged(daemon: Daemon) -> list[str]:
    """Every refused or rejected order that protects or reduces a position (a sell: the
    strategies are long only), and every refused replace of a protective stop, has a
    WARNING (or louder) line naming its ``client_order_id``; a refusal the broker gave a
    reason for (a 403's message) has that reason in the line."""
    loud = [
        line
        for line in daemon.log_text().splitlines()
        if " WARNING " in line or " ERROR " in line or " CRITICAL " in line
    ]
    problems = []
    refused = daemon.query(
        "SELECT o.client_order_id AS cid, o.leg AS leg, e.event AS event, e.detail AS detail "
        "FROM order_events e JOIN orders o ON o.client_order_id = e.client_order_id "
        "WHERE o.side = 'sell' AND (e.to_status = 'rejected' OR e.event = 'order_replace_rejected')"
    )
    for row in refused:
        cid, reason = row["cid"], (row["detail"] or "").strip()
        lines = [line for line in loud if cid in line]
        if not lines:
            problems.append(
                f"refusal of {cid} ({row['leg']}, {row['event']}) not logged at WARNING"
            )
        elif reason and not any(_reason_in(reason, line) for line in lines):
            problems.append(
                f"refusal of {cid} logged at WARNING without the broker's reason {reason!r}"
            )
    return problems


def _reason_in(reason: str, line: str) -> bool:
    """Whether the broker's reason is in the log line (the message, not the exception's
    class name around it)."""
    message = re.sub(r"^[A-Za-z]+(Error|Rejected|Exception)?:\s*", "", reason)
    return message[:60] in line or reason[:60] in line


def no_entry_while_halted(
    broker: BrokerView, daemon: Daemon, halts: list[tuple[str, datetime, datetime]]
) -> list[str]:
    """No entry order of a strategy reached the broker while an operator halt of it stood
    (``halts``: strategy, from, to; the daemon applies a halt within a second, so the window
    starts a few virtual seconds after the command)."""
    legs = {r["client_order_id"]: r for r in daemon.query("SELECT * FROM orders")}
    problems = []
    for order in broker.orders:
        row = legs.get(order["client_order_id"])
        if row is None or row["leg"] != "entry":
            continue
        sent = _t(order["submitted_at"])
        for strategy, start, end in halts:
            if row["strategy"] == strategy and start <= sent < end:
                problems.append(f"entry {order['client_order_id']} sent at {sent} while halted")
    return problems


def intents_accounted_for(daemon: Daemon, now: datetime) -> list[str]:
    """Every pending intent whose session is over was sent, or expired with a log line."""
    problems = []
    log = daemon.log_text()
    for intent in daemon.query("SELECT * FROM intents"):
        expires = intent["expires_at"] and _t(intent["expires_at"])
        if intent["status"] == "pending" and expires and expires < now:
            problems.append(f"intent {intent['id']} still pending after {expires}")
        line = re.compile(rf"expired\s+{intent['strategy']}\s+{intent['symbol']}\s")
        if intent["status"] == "expired" and not line.search(log):
            problems.append(f"intent {intent['id']} expired without its log line")
    return problems


def log_clean(daemon: Daemon, *, refusals: bool = False) -> list[str]:
    """ERROR in the daemon's log means something is wrong (normal races are DEBUG), and a
    discrepancy row is one the daemon could not explain. Where the broker was made to refuse
    orders, the guard's UNPROTECTED error is what must be said (see ``unprotected_reports``)."""
    problems = [
        f"log: {line.strip()[:300]}"
        for line in daemon.log_text().splitlines()
        if (" ERROR " in line or " CRITICAL " in line or "Traceback" in line)
        and not (refusals and _UNPROTECTED in line)
    ]
    problems += [f"discrepancy: {dict(r)}" for r in daemon.query("SELECT * FROM discrepancies")]
    return problems


_UNPROTECTED = " ERROR   position_guard UNPROTECTED "


def unprotected_reports(daemon: Daemon) -> int:
    """How many times the position guard said a position had no working stop or exit."""
    return sum(_UNPROTECTED in line for line in daemon.log_text().splitlines())


def _csv_rows(daemon: Daemon) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    for path in sorted((daemon.state_dir / "trades").glob("*_trades_*.csv")):
        rows += _read_csv(path)
    return rows


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
