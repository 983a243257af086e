"""What a chaos scenario does, decided from its seed before it runs: the trading window
(real crash days), the simulator's strictness options, and a timeline of fault episodes,
SIGKILLs and operator halts at random virtual instants.

Only the plan is deterministic: the daemon is a separate process on a shared clock, so
what exactly it was doing when a fault or a kill landed varies a little from run to run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from tests.e2e.harness import ny


@dataclass(frozen=True)
class Session:
    """One stretch of a trading day the scenario runs through (New York times)."""

    day: str
    start: str
    end: str

    @property
    def begin(self) -> datetime:
        return ny(self.day, self.start)

    @property
    def finish(self) -> datetime:
        return ny(self.day, self.end)


@dataclass(frozen=True)
class Window:
    """Consecutive sessions on real bars: a Bear Trap crash day, the 16:05 daily signal,
    and the next session's open (Daily Trend's orders, Hourly Swing's evaluations)."""

    name: str
    sessions: tuple[Session, ...]


# Crash days from ../shared/data/crash_days.csv (first -15% minute in brackets).
WINDOWS = (
    Window(  # MULN 2024-11-15 (12:37)
        "2024-11-15",
        (Session("2024-11-15", "12:20", "16:12"), Session("2024-11-18", "09:25", "11:10")),
    ),
    Window(  # MULN (09:37) and WKHS (09:39) 2024-11-13, WKHS 2024-11-14 (11:51)
        "2024-11-13",
        (Session("2024-11-13", "09:25", "16:12"), Session("2024-11-14", "09:25", "12:30")),
    ),
    Window(  # WKHS 2024-11-21 (11:50)
        "2024-11-21",
        (Session("2024-11-21", "11:00", "16:12"), Session("2024-11-22", "09:25", "10:40")),
    ),
    Window(  # MULN 2024-12-31 (11:18) and 2025-01-02 (12:38)
        "2024-12-31",
        (Session("2024-12-31", "10:45", "16:12"), Session("2025-01-02", "09:25", "13:30")),
    ),
    Window(  # MULN 2025-01-08 (09:37), the closed 2025-01-09, MULN 2025-01-10 (09:39)
        "2025-01-08",
        (Session("2025-01-08", "09:25", "16:12"), Session("2025-01-10", "09:25", "11:10")),
    ),
)

# Busy windows (tests/chaos/tradebars.py ``busy_bars``): two sessions on days when no shared
# symbol trades a Bear Trap entry, each made to carry sixteen shaped Bear Trap trades.
BUSY_WINDOWS = (
    ("2024-12-05", "2024-12-06"),
    ("2024-12-10", "2024-12-11"),
    ("2024-12-12", "2024-12-13"),
    ("2024-12-16", "2024-12-17"),
    ("2024-12-20", "2024-12-23"),
)

BUSY_RATE_LIMIT = 1200
BUSY_CASH = 400_000

KILL_POINTS = ("random", "submission", "fill", "reconciliation", "stop replace")
REQUEST_POINTS = ("submission", "reconciliation", "stop replace")
LATEST_KILL = "15:20"  # the daemon is up through Bear Trap's 15:55 exit and the close


@dataclass(frozen=True)
class Step:
    """One thing that happens at a virtual instant of the plan."""

    at: datetime
    action: str  # "faults", "clear", "kill", "halt", "resume", "hook"
    faults: dict[str, Any] = field(default_factory=dict)
    hook: dict[str, Any] = field(default_factory=dict)  # "hook": POST /sim/hooks's body
    kinds: tuple[str, ...] = ()  # the fault kinds this step injects (for the table)
    kill_point: str = ""
    downtime: timedelta = timedelta(0)
    strategy: str = ""


@dataclass(frozen=True)
class Plan:
    """A scenario, fully decided."""

    seed: int
    window: Window
    exchange_options: dict[str, Any]
    steps: tuple[Step, ...]
    label: str = ""  # what the table calls it (default: the window)
    config: str = "chaos"  # "chaos", "busy" (more Bear Trap room) or "bear_trap" (it alone)
    bars_shape: str = ""  # "busy", a shaped trade (tests/chaos/tradebars.py), or real bars
    refusals: int = 0  # consecutive refusals the plan arms (each may cost a bar of cover)
    fast: tuple[datetime, datetime] | None = None  # a quiet stretch run at FAST_SPEED
    # Alpaca's 200 requests per minute, per *wall* minute here: at 1000x a busy day's
    # orders would meet it a thousand times sooner than at Alpaca (then, per virtual
    # minute, it is still far below Alpaca's).
    rate_limit: int = 200


def _episode(rng: random.Random) -> tuple[dict[str, Any], tuple[str, ...]]:
    """One fault episode: one to three kinds at once (their fields for POST /sim/faults)."""
    menu: dict[str, dict[str, Any]] = {
        "5xx before processing": {"http_error_rate": rng.choice((0.1, 0.25, 0.4))},
        "5xx after processing (reply lost)": {"http_error_after_rate": rng.choice((0.2, 0.5))},
        "429 burst": {"http_error_rate": 0.6, "http_status": 429},
        "trade frames duplicated": {"trade_duplicate_rate": rng.choice((0.3, 0.7))},
        "trade frames reordered": {"trade_reorder_rate": rng.choice((0.3, 0.7))},
        "trade frames lost": {"trade_drop_rate": rng.choice((0.3, 0.7))},
        "fill events withheld": {"drop_next_fill_events": rng.randint(1, 3)},
        "silent trade socket": {"silent_trade_seconds": rng.choice((60, 240))},
        "silent data socket": {"silent_data_seconds": rng.choice((120, 400))},
        "trade streams dropped": {"drop_trade_streams": True},
        "data streams dropped": {"drop_data_streams": True},
        "all streams dropped": {"drop_streams": True},
        "partial fills": {"partial_fill_ratio": rng.choice((0.3, 0.6))},
        "orders refused": {"refuse_next_orders": rng.randint(1, 2)},
        "orders rejected": {"reject_next_orders": rng.randint(1, 2)},
        "cancels refused": {"refuse_next_cancels": rng.randint(1, 2)},
        "replaces refused": {"refuse_next_replaces": rng.randint(1, 2)},
    }
    # Market-data faults are drawn less often: at test speed a silent or dropped data socket
    # mostly turns Bear Trap's signals into stale warm-up bars, and no orders means nothing
    # left to break in the order path.
    weights = [0.3 if "data" in kind else 1.0 for kind in sorted(menu)]
    kinds: list[str] = []
    count = rng.randint(1, 3)
    while len(kinds) < count:
        kind = rng.choices(sorted(menu), weights)[0]
        if kind not in kinds:
            kinds.append(kind)
    if "429 burst" in kinds and "5xx before processing" in kinds:
        kinds.remove("5xx before processing")  # one http_error_rate per episode
    fields: dict[str, Any] = {}
    for kind in kinds:
        fields.update(menu[kind])
    return fields, tuple(sorted(kinds))


def _instants(rng: random.Random, session: Session, count: int, latest: str) -> list[datetime]:
    end = min(session.finish, ny(session.day, latest))
    span = max(0, int((end - session.begin).total_seconds()) - 300)
    return sorted(
        session.begin + timedelta(seconds=300 + rng.randint(0, span)) for _ in range(count)
    )


def make_busy_plan(seed: int) -> Plan:
    """A busy scenario: the timeline of ``make_plan(seed)`` over a busy window's two whole
    sessions, where sixteen shaped Bear Trap trades a day meet its faults and kills."""
    days = BUSY_WINDOWS[seed % len(BUSY_WINDOWS)]
    window = Window(f"busy {days[0]}", tuple(Session(day, "09:50", "16:12") for day in days))
    plan = make_plan(seed, window=window)
    # cash for the other strategies' holdings and several Bear Trap positions at once
    options = {**plan.exchange_options, "cash": Decimal(BUSY_CASH)}
    return Plan(
        seed,
        window,
        options,
        plan.steps,
        label=window.name,
        config="busy",
        bars_shape="busy",
        rate_limit=BUSY_RATE_LIMIT,
    )


def make_plan(
    seed: int,
    *,
    episodes_per_session: int = 6,
    kills_per_session: int = 2,
    window: Window | None = None,
) -> Plan:
    """The scenario of ``seed``: its window, the simulator's latencies, and the timeline."""
    rng = random.Random(seed)
    window = window or WINDOWS[seed % len(WINDOWS)]
    options = {
        "cancel_latency": rng.choice((2.0, 20.0, 60.0)),
        "replace_latency": rng.choice((2.0, 20.0, 60.0)),
    }
    steps: list[Step] = []
    for session in window.sessions:
        for at in _instants(rng, session, episodes_per_session, "15:50"):
            fields, kinds = _episode(rng)
            steps.append(Step(at, "faults", faults=fields, kinds=kinds))
            steps.append(Step(at + timedelta(minutes=rng.choice((3, 10, 25))), "clear"))
        for at in _instants(rng, session, kills_per_session, LATEST_KILL):
            point = rng.choice(KILL_POINTS)
            downtime = timedelta(seconds=rng.choice((0, 30, 120, 300)))
            # a request is killed in flight before the broker acts on it, or after
            hook = {"when": rng.choice(("before", "after"))} if point in REQUEST_POINTS else {}
            steps.append(Step(at, "kill", kill_point=point, downtime=downtime, hook=hook))
        if rng.random() < 0.5:
            (at,) = _instants(rng, session, 1, "15:00")
            strategy = rng.choice(("bear_trap", "hourly_swing"))
            steps.append(Step(at, "halt", strategy=strategy))
            steps.append(
                Step(at + timedelta(minutes=rng.choice((15, 45))), "resume", strategy=strategy)
            )
    steps.sort(key=lambda s: s.at)
    return Plan(seed, window, options, tuple(steps))
