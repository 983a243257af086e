"""``magellan sweep``'s report: ``report.html`` in one self-contained file (inline CSS, charts
as ``data:`` PNGs; no script, nothing fetched, like the backtest's tearsheet) and the charts
beside it as PNGs.

What it draws, and why:

* ``objective_vs_<param>.png``: every scored trial's objective against one parameter's
  value, the best trial highlighted: whether the objective depends on that parameter, and
  whether the best sits on a plateau (robust) or a lone spike (likely overfit).
* ``heatmap.png``: the best objective over the grid of the two most influential
  parameters' values: where the two interact. The best, not the mean, of each cell: the
  other parameters vary within a cell, and a mean mixes their good and bad settings.
* ``walk_forward.png``: the stitched out-of-sample equity, each test window shaded: what
  the chosen parameters earned on data they were not chosen on.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: never a window, works without a display

import matplotlib.pyplot as plt  # after choosing the backend
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from magellan_daemon.backtest.html_report import STYLE, fmt
from magellan_daemon.research.record import LEADING_METRICS

DPI = 100
MAX_LEVELS = 12  # a numeric parameter with more distinct values than this is binned
BINS = 10
ONE_DAY = timedelta(days=1)
BEST_COLUMNS = ("trades", "total_return_pct", "sharpe", "max_drawdown_pct", "win_rate")
HEATMAP_NOTE = (
    "Each cell is the best objective over the trials with that pair of values: the other "
    "parameters vary within a cell, and a mean would mix their good and bad settings. "
    "A blank cell has no scored trial."
)

Scored = list[tuple[dict[str, Any], float]]  # (trial, its objective)


def write_report(
    out: Path,
    *,
    title: str,
    objective: str,
    maximise: bool,
    params: list[str],
    trials: list[dict[str, Any]],
    best: list[int],
    importance: dict[str, float] | None,
    walk_forward: dict[str, Any] | None,
) -> list[Path]:
    """Write report.html and the PNG charts into `out`; return the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    scored = _scored(trials, objective)
    by_number = {t["trial"]: t for t in trials}
    top = by_number.get(best[0]) if best else None
    written: list[Path] = []
    param_charts = _param_charts(out, objective, maximise, params, scored, top, written)
    heatmap = _heatmap_chart(out, objective, maximise, params, scored, importance, written)
    wf_png = None
    if walk_forward is not None:
        wf_png = _save(walk_forward_figure(walk_forward), out / "walk_forward.png", written)
    parts = [
        *_head(title, objective, maximise, trials, scored),
        *_best_section(objective, params, best, by_number),
        *_importance_section(importance),
        *_charts_section(param_charts, heatmap),
        *_walk_forward_section(objective, walk_forward, wf_png),
        *_failed_section(trials),
        "</body></html>",
    ]
    page = out / "report.html"
    page.write_text("\n".join(parts) + "\n", encoding="utf-8")
    written.append(page)
    return written


# The data -----------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _scored(trials: Iterable[dict[str, Any]], objective: str) -> Scored:
    """The ok trials with a finite objective (an infinite profit factor cannot be drawn)."""
    out = []
    for trial in trials:
        value = trial.get("metrics", {}).get(objective)
        if trial["status"] == "ok" and _is_number(value) and math.isfinite(value):
            out.append((trial, float(value)))
    return out


def _ordered(values: Iterable[Any]) -> list[Any]:
    """Distinct values in their natural order; by text when they do not compare (str and
    int mixed)."""
    distinct = set(values)
    try:
        return sorted(distinct)
    except TypeError:
        return sorted(distinct, key=str)


def _text(value: Any) -> str:
    """A parameter's value for reading: six significant digits (``fmt`` would round 0.005 to
    0.01), booleans as the config's TOML writes them."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _file_name(param: str) -> str:
    return "objective_vs_" + re.sub(r"[^A-Za-z0-9_.-]", "_", param) + ".png"


def _direction(maximise: bool) -> str:
    return "higher is better" if maximise else "lower is better"


def _axis(values: Iterable[Any]) -> tuple[list[str], Callable[[Any], int]]:
    """A heatmap axis: its tick labels and the cell of a value. Values are discrete in a
    grid sweep but continuous under optuna, where every trial has its own: binned then."""
    distinct = _ordered(values)
    if len(distinct) > MAX_LEVELS and all(_is_number(v) for v in distinct):
        return _bins(min(distinct), max(distinct))
    position = {v: i for i, v in enumerate(distinct)}
    return [_text(v) for v in distinct], position.__getitem__


def _bins(low: float, high: float) -> tuple[list[str], Callable[[Any], int]]:
    """``BINS`` equal-width bins over ``[low, high]``, each labelled by its range."""
    width = (high - low) / BINS
    labels = [f"{low + i * width:.3g}–{low + (i + 1) * width:.3g}" for i in range(BINS)]
    return labels, lambda v: min(int((v - low) / width), BINS - 1)  # high is in the last


def _heat_grid(
    scored: Scored, x: str, y: str, maximise: bool
) -> tuple[list[str], list[str], list[list[float | None]]] | None:
    """X labels, y labels and ``grid[row][column]``: the best objective of each pair of
    values (``None`` for a pair no trial scored); ``None`` when no trial has both."""
    points = [
        (t["params"][x], t["params"][y], value)
        for t, value in scored
        if t["params"].get(x) is not None and t["params"].get(y) is not None
    ]
    if not points:
        return None
    x_labels, x_cell = _axis(p[0] for p in points)
    y_labels, y_cell = _axis(p[1] for p in points)
    grid: list[list[float | None]] = [[None] * len(x_labels) for _ in y_labels]
    pick = max if maximise else min
    for x_value, y_value, value in points:
        row, column = y_cell(y_value), x_cell(x_value)
        held = grid[row][column]
        grid[row][column] = value if held is None else pick(held, value)
    return x_labels, y_labels, grid


def _heat_params(params: Sequence[str], importance: dict[str, float] | None) -> list[str]:
    """The two most influential parameters: the top of ``importance``, else the first two."""
    ranked = sorted(importance or {}, key=lambda p: -(importance or {})[p])
    ranked = [p for p in ranked if p in params]
    return (ranked + [p for p in params if p not in ranked])[:2]


# The charts ---------------------------------------------------------------------------------


def _save(fig: Figure, path: Path, written: list[Path]) -> bytes:
    """Draw the figure once: the PNG file and ``report.html``'s image are the same bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    plt.close(fig)
    png = buffer.getvalue()
    path.write_bytes(png)
    written.append(path)
    return png


def objective_figure(
    objective: str, maximise: bool, param: str, scored: Scored, top: dict[str, Any] | None
) -> Figure:
    """The objective of each scored trial against ``param``'s value; text values (and bools)
    on a categorical axis; ``top`` (the best trial) highlighted."""
    points = [(t["params"][param], v) for t, v in scored if t["params"].get(param) is not None]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    where = _x_axis(ax, [x for x, _ in points])
    ax.scatter([where(x) for x, _ in points], [v for _, v in points], alpha=0.6, label="trial")
    mark = _top_point(objective, param, top)
    if mark is not None:
        label = f"best (trial {mark[2]})"
        ax.scatter([where(mark[0])], [mark[1]], marker="*", s=250, color="tab:red", label=label)
        ax.legend()
    ax.set_title(f"{objective} by {param} ({_direction(maximise)})")
    ax.set_xlabel(param)
    ax.set_ylabel(objective)
    ax.ticklabel_format(axis="y", useOffset=False, style="plain")
    fig.tight_layout()
    return fig


def _x_axis(ax: Any, values: Sequence[Any]) -> Callable[[Any], Any]:
    """Where a value goes on the x axis: itself when every value is a number, else its place
    among the distinct values (text and bools on a categorical axis)."""
    if all(_is_number(v) for v in values):
        return lambda v: v
    levels = _ordered(values)
    ax.set_xticks(range(len(levels)), [_text(v) for v in levels])
    ax.set_xlim(-0.5, len(levels) - 0.5)  # a margin of half a category each side
    if len(levels) > 6:
        ax.tick_params(axis="x", labelrotation=30)
    return {v: i for i, v in enumerate(levels)}.__getitem__


def _top_point(
    objective: str, param: str, top: dict[str, Any] | None
) -> tuple[Any, float, int] | None:
    """The best trial's (value, objective, number), when it is scored and has the parameter."""
    if top is None or top["params"].get(param) is None:
        return None
    scored = _scored([top], objective)
    return (top["params"][param], scored[0][1], top["trial"]) if scored else None


def heatmap_figure(
    objective: str,
    maximise: bool,
    x: str,
    y: str,
    cells: tuple[list[str], list[str], list[list[float | None]]],
) -> Figure:
    """``_heat_grid``'s cells, each annotated; the colours run the same way whatever the
    direction (bright is better)."""
    x_labels, y_labels, grid = cells
    data = [[math.nan if v is None else v for v in row] for row in grid]  # NaN: left blank
    # Grows with the grid, within bounds: many text values would make a poster.
    width = min(20.0, max(6.0, 0.9 * len(x_labels) + 3))
    size = (width, min(14.0, max(4.0, 0.5 * len(y_labels) + 2.5)))
    fig, ax = plt.subplots(figsize=size)
    image = ax.imshow(
        data, origin="lower", aspect="auto", cmap="viridis" if maximise else "viridis_r"
    )
    fig.colorbar(image, ax=ax, label=objective)
    ax.set_xticks(range(len(x_labels)), x_labels, rotation=30 if len(x_labels) > 6 else 0)
    ax.set_yticks(range(len(y_labels)), y_labels)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(
        f"Best {objective} by {x} and {y} ({_direction(maximise)})\n"
        "each cell: the best trial with these two values, the others varying",
        fontsize=10,
    )
    _annotate(ax, image, grid)
    fig.tight_layout()
    return fig


def _annotate(ax: Any, image: Any, grid: list[list[float | None]]) -> None:
    """Each cell's value, dark on a bright cell and light on a dark one."""
    for row, values in enumerate(grid):
        for column, value in enumerate(values):
            if value is None:
                continue
            red, green, blue, _ = image.cmap(image.norm(value))
            light = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
            colour = "white" if light else "black"
            ax.text(column, row, f"{value:.3g}", ha="center", va="center", fontsize=8, color=colour)


def walk_forward_figure(walk_forward: dict[str, Any]) -> Figure:
    """The stitched out-of-sample equity at each session's close, each test window shaded
    and labelled, the starting cash as a line; plain dollars on the axis."""
    cash = walk_forward["cash"]
    equity = walk_forward["equity"]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    if equity:
        days = [_as_date(d) for d, _ in equity]
        values = [v for _, v in equity]
        ax.plot(days, values, drawstyle="steps-post", label="out-of-sample equity")
    else:
        ax.text(0.5, 0.6, "no out-of-sample session", ha="center", transform=ax.transAxes)
    ax.axhline(cash, color="grey", linewidth=0.8, label="starting cash")
    for i, window in enumerate(walk_forward["windows"]):
        # to the day after the last session, so that back-to-back windows meet
        start, end = _as_date(window["test_start"]), _as_date(window["test_end"]) + ONE_DAY
        ax.axvspan(start, end, color="tab:orange" if i % 2 else "tab:green", alpha=0.12)
        label = f" W{window['window']}"
        ax.text(start, 1.0, label, va="top", fontsize=8, transform=ax.get_xaxis_transform())
    ax.set_title("Walk-forward: stitched out-of-sample equity (test windows shaded)")
    ax.set_ylabel("USD")
    ax.ticklabel_format(axis="y", useOffset=False, style="plain")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.legend(loc="best")
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def _as_date(value: Any) -> date:
    """A date, also when the windows were read back from JSON as ISO text."""
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _param_charts(
    out: Path,
    objective: str,
    maximise: bool,
    params: Sequence[str],
    scored: Scored,
    top: dict[str, Any] | None,
    written: list[Path],
) -> list[tuple[str, bytes]]:
    """One chart per parameter, none when no trial scored (empty axes say nothing)."""
    if not scored:
        return []
    charts, names = [], set()
    for param in params:
        name = _file_name(param)
        if name in names:  # "a b" and "a_b" would share a file
            name = name.removesuffix(".png") + f"_{len(names)}.png"
        names.add(name)
        png = _save(objective_figure(objective, maximise, param, scored, top), out / name, written)
        charts.append((param, png))
    return charts


def _heatmap_chart(
    out: Path,
    objective: str,
    maximise: bool,
    params: Sequence[str],
    scored: Scored,
    importance: dict[str, float] | None,
    written: list[Path],
) -> tuple[str, str, bytes] | None:
    """``heatmap.png`` over the two most influential parameters, when there are two."""
    if len(params) < 2:
        return None
    x, y = _heat_params(params, importance)
    cells = _heat_grid(scored, x, y, maximise)
    if cells is None:
        return None
    png = _save(heatmap_figure(objective, maximise, x, y, cells), out / "heatmap.png", written)
    return x, y, png


# The page -----------------------------------------------------------------------------------


def _table(head: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Cells are already text; every one is escaped here."""
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _head(
    title: str, objective: str, maximise: bool, trials: Sequence[dict[str, Any]], scored: Scored
) -> list[str]:
    counts = Counter(t["status"] for t in trials)
    line = (
        f"{len(trials)} trials: {counts['ok']} ok, {counts['failed']} failed, "
        f"{counts['skipped']} skipped. Objective: {objective} ({_direction(maximise)})."
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{html.escape(line)}</p>",
    ]
    if not scored:
        parts.append(f"<p>No trial scored {html.escape(objective)}: no chart of the sweep.</p>")
    return parts


def _best_section(
    objective: str, params: Sequence[str], best: Sequence[int], by_number: dict[int, Any]
) -> list[str]:
    """The caller's ranking as given; the objective is not repeated among the columns."""
    columns = [c for c in BEST_COLUMNS if c != objective]
    rows = []
    for rank, number in enumerate(best, 1):
        trial = by_number.get(number)
        if trial is None:
            continue
        metrics = trial.get("metrics", {})
        rows.append(
            [str(rank), str(number)]
            + [_text(trial["params"].get(p)) for p in params]
            + [fmt(objective, metrics.get(objective))]
            + [fmt(c, metrics.get(c)) for c in columns]
        )
    if not rows:
        return ["<h2>Best trials</h2>", "<p>No trial ranked.</p>"]
    return ["<h2>Best trials</h2>", _table(["rank", "trial", *params, objective, *columns], rows)]


def _importance_section(importance: dict[str, float] | None) -> list[str]:
    if not importance:
        return []
    ranked = sorted(importance.items(), key=lambda kv: -kv[1])
    rows = ([name, f"{100 * share:.1f}%"] for name, share in ranked)
    return ["<h2>Parameter importance</h2>", _table(["parameter", "importance"], rows)]


def _charts_section(
    param_charts: Sequence[tuple[str, bytes]], heatmap: tuple[str, str, bytes] | None
) -> list[str]:
    parts = []
    if param_charts:
        parts.append("<h2>Objective by parameter</h2>")
        parts += [_img(png, f"objective by {param}") for param, png in param_charts]
    if heatmap is not None:
        x, y, png = heatmap
        parts += [
            f"<h2>Heatmap: {html.escape(x)} and {html.escape(y)}</h2>",
            f"<p>{html.escape(HEATMAP_NOTE)}</p>",
            _img(png, f"best objective by {x} and {y}"),
        ]
    return parts


def _walk_forward_section(
    objective: str, walk_forward: dict[str, Any] | None, png: bytes | None
) -> list[str]:
    if walk_forward is None or png is None:
        return []
    metrics = walk_forward.get("metrics", {})
    efficiency = fmt("efficiency", walk_forward.get("efficiency"))
    rows = ([key, fmt(key, metrics[key])] for key in LEADING_METRICS if key in metrics)
    return [
        "<h2>Walk-forward</h2>",
        "<p>Walk-forward efficiency (the stitched curve's annualised return over the mean"
        f" annualised in-sample return of the chosen settings): {html.escape(efficiency)}</p>",
        "<h3>Stitched out-of-sample curve</h3>",
        _table(["metric", "out of sample"], rows),
        "<h3>Windows</h3>",
        _windows_table(objective, walk_forward["windows"]),
        _img(png, "stitched out-of-sample equity"),
    ]


def _windows_table(objective: str, windows: Sequence[dict[str, Any]]) -> str:
    rows = (
        [
            str(w["window"]),
            f"{_as_date(w['train_start'])} to {_as_date(w['train_end'])}",
            f"{_as_date(w['test_start'])} to {_as_date(w['test_end'])}",
            ", ".join(f"{k}={_text(v)}" for k, v in w["params"].items()),
            fmt(objective, w.get("in_sample")),
            fmt(objective, w.get("out_of_sample")),
            fmt("total_return_pct", w.get("out_of_sample_return_pct")),
        ]
        for w in windows
    )
    head = ["window", "train", "test", "params", "in sample", "out of sample", "oos return"]
    return _table(head, rows)


def _failed_section(trials: Sequence[dict[str, Any]]) -> list[str]:
    failed = [t for t in trials if t["status"] == "failed"]
    if not failed:
        return []
    rows = ([str(t["trial"]), t.get("error") or ""] for t in failed)
    return [f"<h2>Failed trials ({len(failed)})</h2>", _table(["trial", "error"], rows)]
