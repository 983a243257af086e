"""What ``make chaos`` plans, checked without running it: every point of a trade's life with
1 to 5 refusals, each hook aimed at its leg, and shaped sessions that reach the points."""

from __future__ import annotations

import csv
import gzip
from collections import Counter
from datetime import datetime
from pathlib import Path

from tests.chaos.plan import make_busy_plan
from tests.chaos.refusals import POINTS, refusal_plans
from tests.chaos.run import _parser, _refusal_plans
from tests.chaos.tradebars import busy_bars, shaped_trade_bars


def test_every_point_gets_one_to_five_refusals_of_each_kind() -> None:
    plans = refusal_plans()
    points = Counter(p.label.split(",")[0] for p in plans)
    assert set(points) == {p.name for p in POINTS}
    assert {p.refusals for p in plans} == {1, 2, 3, 4, 5}
    assert points["stop replacement after a scale-out"] == 5  # replaces: one kind
    assert all(n == 10 for name, n in points.items() if "replacement" not in name)
    for plan in plans:
        (step,) = plan.steps
        faults = step.hook["faults"]
        assert list(faults.values()) == [plan.refusals]
        assert step.hook["client_order_id"] in ("-entry", "-ps-", "-time_stop", "-eod")
    # make chaos: one kind per count, 30 sequences
    assert len(_refusal_plans(_parser().parse_args([]))) == 30


def test_a_shaped_session_crashes_at_its_cut_and_trades_to_the_close(
    bars_dir: Path, tmp_path: Path
) -> None:
    out = shaped_trade_bars(bars_dir, tmp_path, "dip")
    rows = _rows(out / "1Min" / "GME.csv.gz", "2024-12-05T1")
    after = [r for r in rows if "2024-12-05T16:01:00Z" <= r["timestamp"] < "2024-12-05T21:00:00Z"]
    crash, signal, *rest = after
    assert float(crash["low"]) < 0.85 * float(crash["open"])
    assert float(signal["close"]) > float(signal["open"]) > float(signal["low"])
    assert min(float(r["low"]) for r in rest[:4]) < float(signal["low"])  # the dip
    assert rest[-1]["timestamp"] == "2024-12-05T20:59:00Z"


def test_a_busy_window_gives_each_symbol_two_trades_a_day(bars_dir: Path, tmp_path: Path) -> None:
    days = ("2024-12-05",)
    plan = make_busy_plan(0)
    assert plan.config == "busy" and plan.bars_shape == "busy"
    assert len(plan.window.sessions) == 2
    out = busy_bars(bars_dir, tmp_path, days, symbols=("MULN",))
    for symbol in ("MULN",):
        for day in days:
            rows = _rows(out / "1Min" / f"{symbol}.csv.gz", day)
            session = [r for r in rows if "14:30" <= r["timestamp"][11:16] < "21:00"]
            opening = float(session[0]["open"])
            crashes = [r for r in session if float(r["low"]) <= 0.80 * opening + 1e-9]
            assert len({_minute(r) // 120 for r in crashes}) >= 2, (symbol, day)


def _rows(path: Path, prefix: str) -> list[dict[str, str]]:
    with gzip.open(path, "rt", newline="") as handle:
        return [r for r in csv.DictReader(handle) if r["timestamp"].startswith(prefix[:10])]


def _minute(row: dict[str, str]) -> int:
    t = datetime.fromisoformat(row["timestamp"].replace("Z", "+00:00"))
    return t.hour * 60 + t.minute
