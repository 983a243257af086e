"""Refusal sequences: 1 to 5 consecutive refusals by the broker, starting at one point of a
Bear Trap trade's life, on a session shaped so that the trade reaches that point
(tests/chaos/tradebars.py). A random fault mix of any size almost never meets these
sequences, and they are where a position is left unprotected or held past its horizon.

A sequence is armed with a simulator hook (``POST /sim/hooks``): when the first request of
the point arrives (matched by the order's leg in its ``client_order_id``), the simulator
starts refusing the next N orders (or replaces) from that request on. The points:

- entry resting: from the moment the entry order is accepted (it rests until the next
  minute's bar fills it): the protective stop, and whatever follows, are refused;
- stop placement: the protective stop's placement and what follows, on a session whose
  next bar trades through the stop level (then the strategy's market exit meets the rest);
- stop replacement after a scale-out: the resize of the stop at TP1 (PATCH), N times;
- time-stop exit: the sell of the 30-minute time stop and what follows;
- EOD exit: the 15:55 sell and what follows, into the close;
- across a restart: the stop's placement is refused and the daemon is SIGKILLed while it is
  in flight; the rest of the sequence meets the restarted daemon.

Each kind is tried two ways: ``rejected`` (accepted, then rejected on the trade stream) and
``refused`` (403 at once). A replace has only the first (200, then
``order_replace_rejected``). The invariants after the close: nothing held (broker and
ledger), never short, every refused protective or reducing order logged at WARNING with
the broker's reason, no Bear Trap share uncovered by a working stop or exit for longer than
the usual allowance plus one bar per refusal, and everything ``make chaos`` checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from tests.chaos.plan import Plan, Session, Step, Window
from tests.chaos.tradebars import DAY
from tests.e2e.harness import ny

KINDS = {"rejected": "reject_next_orders", "refused": "refuse_next_orders"}
HOLD_SECONDS = 20.0  # wall seconds a hooked request may be held (the kill comes at once)
ORDERS = "^/v2/orders$"


@dataclass(frozen=True)
class Point:
    """One point of a trade's life: the session shape that reaches it and the hook."""

    name: str
    shape: str
    start: str  # New York time the daemon starts (a few minutes before the crash)
    hook: dict[str, Any]
    replaces: bool = False  # refuse replaces (PATCH), not orders
    restart: bool = False  # SIGKILL the daemon at the hit, restart it


POINTS = (
    Point(
        "entry resting",
        "scale_out",
        "10:50",
        {"path": ORDERS, "client_order_id": "-entry", "when": "after"},
    ),
    Point("stop placement", "dip", "10:50", {"path": ORDERS, "client_order_id": "-ps-"}),
    Point(
        "stop replacement after a scale-out",
        "scale_out",
        "10:50",
        {"method": "PATCH", "client_order_id": "-ps-"},
        replaces=True,
    ),
    Point(
        "time-stop exit", "scale_out", "10:50", {"path": ORDERS, "client_order_id": "-time_stop"}
    ),
    Point("EOD exit", "late", "15:14", {"path": ORDERS, "client_order_id": "-eod"}),
    Point(
        "across a restart",
        "scale_out",
        "10:50",
        {"path": ORDERS, "client_order_id": "-ps-", "hold_seconds": HOLD_SECONDS},
        restart=True,
    ),
)


def refusal_plans(counts: range = range(1, 6), kinds: tuple[str, ...] = tuple(KINDS)) -> list[Plan]:
    """Every (point, N, kind) sequence as a plan; seeds number them from 1000."""
    plans = []
    for point in POINTS:
        for n in counts:
            for kind in ("rejected",) if point.replaces else kinds:
                plans.append(refusal_plan(point, n, kind, 1000 + len(plans)))
    return plans


def refusal_plan(point: Point, n: int, kind: str, seed: int) -> Plan:
    """One sequence: ``n`` refusals of ``kind`` from ``point`` on."""
    faults = {"refuse_next_replaces": n} if point.replaces else {KINDS[kind]: n}
    hook = {"name": "refusals", "method": "POST", **point.hook, "faults": faults}
    begin = ny(DAY, point.start)
    label = f"{point.name}, {n} {kind}"
    step = Step(
        begin + timedelta(minutes=1),
        "hook",
        hook=hook,
        kill_point="restart" if point.restart else "",
    )
    return Plan(
        seed=seed,
        window=Window(label, (Session(DAY, point.start, "16:12"),)),
        exchange_options={"cancel_latency": 2.0, "replace_latency": 2.0},
        steps=(step,),
        label=label,
        config="bear_trap",
        bars_shape=point.shape,
        refusals=n,
        fast=(ny(DAY, "12:15"), ny(DAY, "15:45")) if point.shape == "scale_out" else None,
    )
