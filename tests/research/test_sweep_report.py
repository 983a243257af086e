"""``magellan sweep``'s report files: every chart a PNG embedded in ``report.html`` as the
same bytes, nothing fetched, the best trials in the caller's order, errors escaped, the
heatmap's best-per-cell and binning, the walk-forward section, and sweeps where nothing
scored or one text parameter was swept."""

from __future__ import annotations

import base64
import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from magellan_daemon.research import report

FAST = (5, 10, 20)
SLOW = (50, 100, 200)


def ok(number: int, params: dict[str, Any], sharpe: float | None) -> dict[str, Any]:
    metrics = {
        "total_return_pct": 1.5 * number,
        "sharpe": sharpe,
        "max_drawdown_pct": 3.0,
        "win_rate": 0.5,
        "trades": 10 + number,
    }
    return {
        "trial": number,
        "status": "ok",
        "seconds": 0.1,
        "params": params,
        "metrics": metrics,
        "error": "",
    }


def not_run(number: int, status: str, error: str = "") -> dict[str, Any]:
    return {
        "trial": number,
        "status": status,
        "seconds": 0.0,
        "params": {"fast": 5},
        "metrics": {},
        "error": error,
    }


def grid_trials() -> list[dict[str, Any]]:
    """3x3 ok trials (the best: fast 10, slow 200), then a failed and a skipped one."""
    trials = [
        ok(i, {"fast": f, "risk.slow": s}, sharpe=s / 100 - abs(f - 10) / 10)
        for i, (f, s) in enumerate((f, s) for f in FAST for s in SLOW)
    ]
    return [*trials, not_run(9, "failed", "boom <b>bad</b>"), not_run(10, "skipped")]


def ranked(trials: list[dict[str, Any]]) -> list[int]:
    scored = [t for t in trials if t["status"] == "ok" and t["metrics"]["sharpe"] is not None]
    return [t["trial"] for t in sorted(scored, key=lambda t: -t["metrics"]["sharpe"])][:10]


def write(out: Path, trials: list[dict[str, Any]], params: list[str], **extra: Any) -> list[Path]:
    kwargs: dict[str, Any] = {"importance": None, "walk_forward": None, **extra}
    return report.write_report(
        out,
        title="sweep <daily_trend>",
        objective="sharpe",
        maximise=True,
        params=params,
        trials=trials,
        best=ranked(trials),
        **kwargs,
    )


def check_files(out: Path, written: list[Path]) -> str:
    """Every PNG valid and embedded as the same bytes; nothing fetched; the page's text."""
    assert sorted(written) == sorted(out.iterdir())
    page = (out / "report.html").read_text(encoding="utf-8")
    for path in written:
        if path.suffix == ".png":
            png = path.read_bytes()
            assert png.startswith(b"\x89PNG"), path
            assert f"data:image/png;base64,{base64.b64encode(png).decode()}" in page, path
    assert "http://" not in page and "https://" not in page and "<script" not in page
    return page


def test_a_grid_sweep_has_its_charts_best_trials_and_failures(tmp_path: Path) -> None:
    trials = grid_trials()
    importance = {"risk.slow": 0.7, "fast": 0.3}
    written = write(tmp_path, trials, ["fast", "risk.slow"], importance=importance)
    names = {p.name for p in written}
    assert names == {
        "objective_vs_fast.png",
        "objective_vs_risk.slow.png",
        "heatmap.png",
        "report.html",
    }
    page = check_files(tmp_path, written)
    assert "<h1>sweep &lt;daily_trend&gt;</h1>" in page
    assert "11 trials: 9 ok, 1 failed, 1 skipped. Objective: sharpe (higher is better)." in page
    best = re.search(r"<h2>Best trials</h2>\s*<table>.*?<tbody>(.*?)</tbody>", page, re.S)
    assert best
    rows = re.findall(r"<tr>(.*?)</tr>", best.group(1))
    first = re.findall(r"<td>([^<]*)</td>", rows[0])
    assert len(rows) == 9 and first[:5] == ["1", "5", "10", "200", "2.00"], first  # trial 5
    assert "<th>risk.slow</th>" in page and "<td>risk.slow</td><td>70.0%</td>" in page
    assert "best objective" in page.lower() and "a mean would mix" in page
    assert "<td>9</td><td>boom &lt;b&gt;bad&lt;/b&gt;</td>" in page and "<b>bad" not in page
    assert "Walk-forward" not in page


def test_the_heatmap_keeps_each_cells_best_and_bins_continuous_values() -> None:
    # Within the cell (a=1, b=1) c varies: 1.0 and 3.0; a mean (2.0) would be neither.
    scored = [
        (ok(0, {"a": 1, "b": 1, "c": 0}, 1.0), 1.0),
        (ok(1, {"a": 1, "b": 1, "c": 1}, 3.0), 3.0),
        (ok(2, {"a": 2, "b": 1, "c": 0}, 2.0), 2.0),
    ]
    cells = report._heat_grid(scored, "a", "b", maximise=True)
    assert cells == (["1", "2"], ["1"], [[3.0, 2.0]])
    cells = report._heat_grid(scored, "a", "b", maximise=False)
    assert cells is not None and cells[2] == [[1.0, 2.0]]
    # Optuna: 30 distinct values of x in [0, 2.9] -> 10 bins of 0.29; y stays discrete.
    scored = [(ok(i, {"x": i / 10, "y": i % 2}, i), float(i)) for i in range(30)]
    cells = report._heat_grid(scored, "x", "y", maximise=True)
    assert cells is not None
    x_labels, y_labels, grid = cells
    assert len(x_labels) == 10 and x_labels[0] == "0–0.29" and x_labels[-1].endswith("2.9")
    assert y_labels == ["0", "1"] and grid[1][-1] == 29.0  # the top value is in the last bin
    assert report._heat_params(["a", "b", "c"], {"c": 0.5, "a": 0.1, "b": 0.4}) == ["c", "b"]
    assert report._heat_params(["a", "b", "c"], None) == ["a", "b"]


def test_a_walk_forward_has_its_section_and_chart(tmp_path: Path) -> None:
    start = date(2024, 3, 1)
    days = [start + timedelta(days=i) for i in range(20)]
    windows = [
        {
            "window": n,
            "train_start": start - timedelta(days=60),
            "train_end": s - timedelta(1),
            "test_start": s,
            "test_end": s + timedelta(days=9),
            "params": {"fast": 10, "on": True},
            "in_sample": 1.2,
            "out_of_sample": 0.6,
            "out_of_sample_return_pct": 0.8,
        }
        for n, s in ((1, days[0]), (2, days[10]))
    ]
    walk_forward = {
        "cash": 100_000.0,
        "equity": [(d, 100_000.0 + 50 * i) for i, d in enumerate(days)],
        "windows": windows,
        "efficiency": 0.5,
        "metrics": {"total_return_pct": 0.95, "sharpe": 1.1, "trades": 7},
    }
    trials = grid_trials()
    written = write(tmp_path, trials, ["fast", "risk.slow"], walk_forward=walk_forward)
    assert "walk_forward.png" in {p.name for p in written}
    page = check_files(tmp_path, written)
    section = page[page.index("<h2>Walk-forward</h2>") :]
    assert "annualised in-sample return of the chosen settings): 0.50" in section
    assert "<td>total_return_pct</td><td>0.95%</td>" in section
    assert "<td>2</td><td>2024-01-01 to 2024-03-10</td><td>2024-03-11 to 2024-03-20</td>" in section
    assert "<td>fast=10, on=true</td><td>1.20</td><td>0.60</td><td>0.80%</td>" in section
    assert page.index("<h2>Walk-forward</h2>") < page.index("<h2>Failed trials (1)</h2>")


def test_no_scored_trial_writes_only_the_page(tmp_path: Path) -> None:
    trials = [
        not_run(0, "failed", "no bars"),
        not_run(1, "skipped"),
        ok(2, {"fast": 5, "risk.slow": 50}, None),
    ]
    written = write(tmp_path, trials, ["fast", "risk.slow"], importance={"fast": 1.0})
    assert [p.name for p in written] == ["report.html"]
    page = check_files(tmp_path, written)
    assert "3 trials: 1 ok, 1 failed, 1 skipped." in page
    assert "No trial scored sharpe" in page and "No trial ranked." in page
    assert "<td>0</td><td>no bars</td>" in page


def test_text_and_single_values_are_drawn_on_a_categorical_axis(tmp_path: Path) -> None:
    trials = [ok(i, {"mode": m}, s) for i, (m, s) in enumerate((("b", 1.0), ("a", 2.0)))]
    written = write(tmp_path, [*trials, ok(2, {"mode": "c"}, None)], ["mode"])
    assert [p.name for p in written] == ["objective_vs_mode.png", "report.html"]
    page = check_files(tmp_path, written)
    assert re.search(r"<tr><td>1</td><td>1</td><td>a</td><td>2.00</td>", page)
    # One value, and a bool: still drawn (a single categorical tick).
    one = [ok(0, {"on": True, "n": 3}, 0.5)]
    written = write(tmp_path / "one", one, ["on", "n"])
    assert {p.name for p in written} == {
        "objective_vs_on.png",
        "objective_vs_n.png",
        "heatmap.png",
        "report.html",
    }
    check_files(tmp_path / "one", written)
    assert report._file_name("risk.max open/x") == "objective_vs_risk.max_open_x.png"
