"""A whole sweep: one study over the range, or one per walk-forward window with each window's
best setting run on its test months; then ``best.toml``, ``sweep.json`` and the report.

Layout of ``--out``: ``study.json`` (what the study is), ``trials.csv`` (every trial) and
(optuna) ``study.db``; with ``--walk-forward``, the windows' trials one after another in
``trials.csv``, each window's optuna study and ``test.json`` (its out-of-sample run) in
``windows/NN/``, and ``walk_forward.csv``. A window whose ``test.json`` exists is done.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from magellan_daemon.backtest import metrics
from magellan_daemon.research import outputs, report
from magellan_daemon.research.objective import Objective
from magellan_daemon.research.pool import TrialPool
from magellan_daemon.research.record import TrialsFile, write_atomically
from magellan_daemon.research.search import STUDY_NAME, Listener, Study, counts
from magellan_daemon.research.space import Space, format_value, with_values
from magellan_daemon.research.trial import TrialResult, TrialSetup, TrialTask
from magellan_daemon.research.walk_forward import Window, efficiency, stitch
from magellan_sim.market.calendar import SessionCalendar

log = logging.getLogger(__name__)
TOP = 10


@dataclass(frozen=True)
class SweepPlan:
    """Everything the command checked before the first trial."""

    out: Path
    space: Space
    setup: TrialSetup
    objective: Objective
    search: str
    trials: int
    seed: int
    windows: tuple[Window, ...] = ()  # empty: no walk-forward
    walk_forward: str | None = None  # as given, e.g. "3M:1M"
    command: tuple[str, ...] = ()

    def identity(self, workers: int) -> dict[str, Any]:
        """What makes this study this one (``study.json``): a resume must match it."""
        out: dict[str, Any] = {
            "strategy": self.setup.base.name,
            "space": self.space.describe(),
            "start": self.setup.start.isoformat(),
            "end": self.setup.end.isoformat(),
            "search": self.search,
            "bars": str(self.setup.bars.resolve()),
            "cash": str(self.setup.cash),
            "base_params": self.setup.base.params.model_dump(mode="json"),
            "walk_forward": self.walk_forward,
        }
        if self.windows:  # the windows' trials follow each other in trials.csv
            out["trials"] = self.trials if self.search == "optuna" else None
        if self.search == "optuna":  # these decide which trials optuna draws
            out |= {
                "seed": self.seed,
                "objective": self.objective.key,
                "min_trades": self.objective.min_trades,
                "batch": workers,
            }
        return json.loads(json.dumps(out, default=str))


def run_sweep(plan: SweepPlan, pool: TrialPool, listener: Listener) -> dict[str, Any]:
    """Run (or resume) the sweep and write every output; ``sweep.json``'s content."""
    started = time.perf_counter()
    ran_before = _finished_count(plan)
    if plan.windows:
        results, walk = _walk_forward(plan, pool, listener)
    else:
        study = Study(
            plan.out, _record(plan), plan.space, plan.setup, plan.objective, pool, listener
        )
        results, walk = study.run(plan.search, plan.trials, plan.seed), None
    wall = time.perf_counter() - started
    ranked = plan.objective.ranked(results)
    best = ranked[0] if ranked else None
    if best is not None:
        _write_best(plan, best)
    else:
        log.warning(
            "no trial counts as best (none ok with %s and at least %d trades): no best.toml",
            plan.objective.key,
            plan.objective.min_trades,
        )
    ran_now = _finished_count(plan) - ran_before
    summary = _summary(plan, pool, results, ranked, walk, wall, ran_now)
    outputs.write_sweep_json(plan.out / "sweep.json", summary)
    _write_report(plan, results, ranked, walk)
    return summary


def _record(plan: SweepPlan) -> TrialsFile:
    return TrialsFile(plan.out / "trials.csv", plan.space.parameters)


def _finished_count(plan: SweepPlan) -> int:
    """The trials run so far (``ok`` or ``failed`` rows of ``trials.csv``; a skipped one
    never ran)."""
    file = plan.out / "trials.csv"
    if not file.exists():
        return 0
    with file.open(newline="") as handle:
        return sum(1 for row in csv.DictReader(handle) if row.get("status") in ("ok", "failed"))


def _walk_forward(
    plan: SweepPlan, pool: TrialPool, listener: Listener
) -> tuple[list[TrialResult], dict[str, Any]]:
    """Each window: the study on train, its best on test. Window ``w``'s trials follow the
    windows before it in ``trials.csv`` (numbers from ``(w - 1) x`` the study's size). The last
    window's trials are the ones ``best.toml`` and the report's trial charts come from (the
    setting to trade next)."""
    record = _record(plan)
    size = plan.space.size(plan.search, plan.trials)
    rows: list[dict[str, Any]] = []
    tests: list[TrialResult | None] = []
    results: list[TrialResult] = []
    for window in plan.windows:
        folder = plan.out / "windows" / f"{window.number:02d}"
        study = Study(
            folder,
            record,
            plan.space,
            plan.setup.over(window.train_start, window.train_end),
            plan.objective,
            pool,
            listener,
            label=f"window {window.number}/{len(plan.windows)}",
            first=(window.number - 1) * size,
        )
        results = study.run(plan.search, plan.trials, plan.seed)
        ranked = plan.objective.ranked(results)
        chosen = ranked[0] if ranked else None
        test = _tested(plan, pool, window, folder, chosen)
        tests.append(test)
        rows.append(_window_row(plan, window, chosen, test))
        _write_walk_forward_csv(plan, rows)
    return results, _stitched(plan, rows, tests)


def _tested(
    plan: SweepPlan, pool: TrialPool, window: Window, folder: Path, chosen: TrialResult | None
) -> TrialResult | None:
    """The chosen setting run on the window's test months (kept in ``test.json``)."""
    path = folder / "test.json"
    if path.exists():
        saved = json.loads(path.read_text())
        return None if saved is None else _result_from_json(saved)
    result = None
    if chosen is not None:
        params = with_values(plan.setup.base.params, chosen.values)
        task = TrialTask(chosen.number, chosen.values, params, keep_trades=True)
        setup = plan.setup.over(window.test_start, window.test_end)
        result = next(iter(pool.run(setup, [task])))
    else:
        log.warning("window %d: no setting counts as best: no trading out of sample", window.number)
    write_atomically(path, json.dumps(None if result is None else _result_json(result)) + "\n")
    return result


def _result_json(result: TrialResult) -> dict[str, Any]:
    return {
        "number": result.number,
        "status": result.status,
        "seconds": result.seconds,
        "values": result.values,
        "metrics": result.metrics,
        "error": result.error,
        "equity": list(result.equity),
        "trades": [
            [t.symbol, t.pnl, t.entry_time.isoformat(), t.exit_time.isoformat()]
            for t in result.trades
        ],
    }


def _result_from_json(data: dict[str, Any]) -> TrialResult:
    trades = tuple(
        metrics.Trade(symbol, pnl, datetime.fromisoformat(a), datetime.fromisoformat(b))
        for symbol, pnl, a, b in data["trades"]
    )
    return TrialResult(
        data["number"],
        data["status"],
        data["seconds"],
        data["values"],
        metrics=data["metrics"],
        error=data["error"],
        equity=tuple((d, v) for d, v in data["equity"]),
        trades=trades,
    )


def _window_row(
    plan: SweepPlan, window: Window, chosen: TrialResult | None, test: TrialResult | None
) -> dict[str, Any]:
    key = plan.objective.key
    ok = test is not None and test.status == "ok"
    return {
        "window": window.number,
        "train_start": window.train_start,
        "train_end": window.train_end,
        "test_start": window.test_start,
        "test_end": window.test_end,
        "params": {} if chosen is None else dict(chosen.values),
        "in_sample": None if chosen is None else chosen.metrics.get(key),
        "in_sample_cagr_pct": None if chosen is None else chosen.metrics.get("cagr_pct"),
        "out_of_sample": test.metrics.get(key) if ok and test else None,
        "out_of_sample_return_pct": test.metrics.get("total_return_pct") if ok and test else None,
        "error": "" if test is None or ok else test.error,
    }


def _write_walk_forward_csv(plan: SweepPlan, rows: list[dict[str, Any]]) -> None:
    """``walk_forward.csv``, rewritten whole after each window (never a partial row)."""
    key = plan.objective.key
    names = plan.space.names
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        [
            "window",
            "train_start",
            "train_end",
            "test_start",
            "test_end",
            *(f"param.{n}" for n in names),
            f"in_sample_{key}",
            f"out_of_sample_{key}",
            "out_of_sample_return_pct",
        ]
    )
    for row in rows:
        writer.writerow(
            [
                row["window"],
                row["train_start"],
                row["train_end"],
                row["test_start"],
                row["test_end"],
                *(format_value(row["params"].get(n)) for n in names),
                format_value(row["in_sample"]),
                format_value(row["out_of_sample"]),
                format_value(row["out_of_sample_return_pct"]),
            ]
        )
    write_atomically(plan.out / "walk_forward.csv", buffer.getvalue())


def _stitched(
    plan: SweepPlan, rows: list[dict[str, Any]], tests: list[TrialResult | None]
) -> dict[str, Any]:
    """The out-of-sample curve of every test window chained, and its metrics; a window
    with no setting (or a failed test) stays flat: nothing would have traded."""
    cash = float(plan.setup.cash)
    calendar = SessionCalendar()
    curves: list[list[tuple[date, float]]] = []
    trades: list[metrics.Trade] = []
    for window, test in zip(plan.windows, tests, strict=True):
        if test is not None and test.status == "ok":
            curves.append([(date.fromisoformat(d), v) for d, v in test.equity])
            trades += test.trades
        else:
            days = calendar.sessions(window.test_start, window.test_end)
            curves.append([(s.date, cash) for s in days])
    equity = stitch(cash, curves)
    exposure = [t.metrics.get("exposure") or 0.0 for t in tests if t is not None and t.metrics]
    stitched = metrics.metrics(
        cash,
        equity,
        sorted(trades, key=lambda t: t.exit_time),
        sum(exposure) / len(plan.windows) if exposure else 0.0,
        None,
    )
    in_sample = [r["in_sample_cagr_pct"] for r in rows if r["in_sample_cagr_pct"] is not None]
    return {
        "cash": cash,
        "equity": equity,
        "windows": rows,
        "metrics": stitched,
        "efficiency": efficiency(stitched["cagr_pct"], in_sample),
    }


def _write_best(plan: SweepPlan, best: TrialResult) -> None:
    key = plan.objective.key
    where = "the last walk-forward window's" if plan.windows else "the"
    header = [
        f"magellan sweep: {where} best trial, {best.number}, "
        f"{key} = {format_value(best.metrics.get(key))}",
        f"over {plan.setup.base.config_path} with: "
        + ", ".join(f"{k} = {format_value(v)}" for k, v in best.values.items()),
    ]
    outputs.write_best_toml(
        plan.out / "best.toml", plan.setup.base.config_path, best.values, header
    )


def _summary(
    plan: SweepPlan,
    pool: TrialPool,
    results: list[TrialResult],
    ranked: list[TrialResult],
    walk: dict[str, Any] | None,
    wall: float,
    ran_now: int,
) -> dict[str, Any]:
    best = ranked[0] if ranked else None
    out: dict[str, Any] = {
        "command": list(plan.command),
        "strategy": plan.setup.base.name,
        "search": plan.search,
        "seed": plan.seed if plan.search == "optuna" else None,
        "trials_asked": plan.trials if plan.search == "optuna" else None,
        "objective": {
            "key": plan.objective.key,
            "direction": plan.objective.direction,
            "min_trades": plan.objective.min_trades,
        },
        "space": plan.space.describe(),
        "start": plan.setup.start,
        "end": plan.setup.end,
        "where": pool.where,
        "workers": pool.workers,
        "counts": counts(results),
        "best": None
        if best is None
        else {"trial": best.number, "params": best.values, "metrics": best.metrics},
        "top": [
            {"trial": r.number, "params": r.values, "metrics": r.metrics} for r in ranked[:TOP]
        ],
        "wall_seconds": round(wall, 3),
        "trials_run": ran_now,
        "trials_per_second": round(ran_now / wall, 4) if wall > 0 else None,
    }
    if walk is not None:
        out["walk_forward"] = {
            "spec": plan.walk_forward,
            "windows": walk["windows"],
            "efficiency": walk["efficiency"],
            "out_of_sample": walk["metrics"],
        }
    return out


def _write_report(
    plan: SweepPlan,
    results: list[TrialResult],
    ranked: list[TrialResult],
    walk: dict[str, Any] | None,
) -> None:
    title = (
        f"magellan sweep: {plan.setup.base.name} {plan.setup.start} to {plan.setup.end}, "
        f"{plan.search}"
    )
    report.write_report(
        plan.out,
        title=title,
        objective=plan.objective.key,
        maximise=plan.objective.maximise,
        params=plan.space.names,
        trials=[
            {
                "trial": r.number,
                "status": r.status,
                "seconds": r.seconds,
                "params": r.values,
                "metrics": r.metrics,
                "error": r.error,
            }
            for r in results
        ],
        best=[r.number for r in ranked[:TOP]],
        importance=_importance(plan, results),
        walk_forward=walk,
    )


def _importance(plan: SweepPlan, results: list[TrialResult]) -> dict[str, float] | None:
    """Optuna's parameter importance of the (last) study; None for a grid or too few trials
    (the report then takes the two first swept parameters)."""
    if plan.search != "optuna" or len(plan.space.names) < 2:
        return None
    import optuna

    folder = plan.out / "windows" / f"{plan.windows[-1].number:02d}" if plan.windows else plan.out
    study = optuna.load_study(study_name=STUDY_NAME, storage=f"sqlite:///{folder / 'study.db'}")
    try:
        return optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError) as exc:  # too few completed trials to tell
        log.info("no parameter importance: %s", exc)
        return None
