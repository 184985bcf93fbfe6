"""A static HTML leaderboard of the results database.

:func:`render_leaderboard` writes ``index.html`` (boards x methods), one page per board -- the runs
scored on one test set, ranked (:mod:`ferbench.boards`) -- and one page per run (provenance, config,
per-fold metrics, per-class recall, confusion matrix, training curves). Published numbers
(:mod:`ferbench.paper_results`) appear only on boards that hold the paper's setting. Pages use
relative links only and no JavaScript, so they open straight from disk.
"""
from __future__ import annotations

import json
import math
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from . import __version__
from .boards import Board, RunView, build_boards, metric_names, safe_name
from .config import flatten
from .metrics import confusion_matrix, mean_std, per_class_recall
from .paper_results import PaperResult, load_paper_results  # noqa: F401 - the CLI loads the rows from here
from .plugins import registry
from .settings import ACCURACY, RunKind
from .specs import MetricSpec
from .store import Store

FOLD_COLOURS = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c",
                "#0891b2", "#ca8a04", "#db2777", "#4b5563", "#65a30d")


# --- formatting ------------------------------------------------------------------------------------

def _finite(value: Any) -> bool:
    return isinstance(value, (int, float, np.floating, np.integer)) and math.isfinite(value)


def pct(value: Any) -> str:
    """A fraction as a percentage with two decimals (``—`` when missing)."""
    return f"{100 * value:.2f}" if _finite(value) else "—"


def _spec(name: str) -> MetricSpec:
    return registry().metric_spec(name)


def percent(name: str) -> bool:
    """Whether metric ``name`` is shown as a percentage (as its :class:`~ferbench.specs.MetricSpec` declares)."""
    return _spec(name).percent


def pm(stats: Mapping[str, float]) -> str:
    """``mean ± std`` of fractions, in percent."""
    return f"{pct(stats['mean'])} ± {pct(stats['std'])}" if stats.get("n") else "—"


def spread(stats: Mapping[str, Any], name: str = ACCURACY) -> str:
    """``mean ± std`` of :func:`~ferbench.metrics.seed_fold_stats` of metric ``name``, as it declares:
    the std over seeds where there are several seeds, else the std over folds."""
    if not stats.get("seeds"):
        return "—"
    std = stats["seed_std"] if stats["seeds"] > 1 else stats["fold_std"]
    mean = metric_value(stats["mean"], name)
    return f"{mean} ± {metric_value(std, name)}" if _finite(std) else mean


def spread_note(stats: Mapping[str, Any], name: str = ACCURACY) -> str:
    """What the ``±`` of :func:`spread` is, and the fold std where it is not that."""
    if stats.get("seeds", 0) > 1:
        folds = f"; folds ± {metric_value(stats['fold_std'], name)}" if _finite(stats["fold_std"]) else ""
        return f"sd over {stats['seeds']} seeds{folds}"
    return f"sd over {stats['folds']} folds" if _finite(stats.get("fold_std")) else ""


def metric_value(value: Any, name: str) -> str:
    """A metric value as its :class:`~ferbench.specs.MetricSpec` declares (percent, format)."""
    return _spec(name).format_value(value) if _finite(value) else "—"


def metric_pm(stats: Mapping[str, float], name: str) -> str:
    if not stats.get("n"):
        return "—"
    return f"{metric_value(stats['mean'], name)} ± {metric_value(stats['std'], name)}"


def when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if isinstance(value, datetime) else ("—" if value is None else str(value))


def _environment() -> Environment:
    env = Environment(loader=PackageLoader("ferbench", "templates"), autoescape=select_autoescape(["html"]),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(pct=pct, pm=pm, spread=spread, spread_note=spread_note, metric_value=metric_value,
                       metric_pm=metric_pm, when=when, percent=percent)
    return env


# --- loading ---------------------------------------------------------------------------------------

def _load_runs(store: Store) -> tuple[list[RunView], dict[str, int]]:
    """All runs with their folds, completed folds' metrics and curves; folds per manifest hash."""
    runs = {row["run_id"]: RunView(row) for row in store.query("SELECT * FROM runs ORDER BY started_at, run_id")}
    for row in store.query("SELECT * FROM folds ORDER BY run_id, fold"):
        if row["run_id"] in runs:
            runs[row["run_id"]].folds[row["fold"]] = row
    for row in store.query("SELECT m.run_id, m.fold, m.metric, m.value FROM fold_metrics m JOIN folds f "
                           "ON m.run_id = f.run_id AND m.fold = f.fold WHERE f.status = 'completed' "
                           "ORDER BY m.run_id, m.fold, m.metric"):
        if row["run_id"] in runs:
            runs[row["run_id"]].metrics.setdefault(row["fold"], {})[row["metric"]] = row["value"]
    for row in store.query("SELECT run_id, fold, epoch, name, value FROM curves ORDER BY run_id, name, fold, epoch"):
        if row["run_id"] in runs:
            runs[row["run_id"]].curves.setdefault(row["name"], {}).setdefault(row["fold"], []).append(
                (row["epoch"], row["value"]))
    for row in store.query("SELECT * FROM artifacts ORDER BY run_id, fold, kind, name"):
        if row["run_id"] in runs:
            runs[row["run_id"]].artifacts.append(row)
    for row in store.query("SELECT run_id, fold FROM predictions GROUP BY run_id, fold "
                           "HAVING count(DISTINCT prediction) = 1 AND count(DISTINCT label) > 1 ORDER BY run_id, fold"):
        if row["run_id"] in runs:
            runs[row["run_id"]].single_class_folds.append(row["fold"])
    fold_counts = {row["manifest_hash"]: row["n"] for row in store.query(
        "SELECT manifest_hash, json_array_length(manifest, '$.folds') AS n FROM manifests")}
    return list(runs.values()), fold_counts

# --- run page details ------------------------------------------------------------------------------

def _class_tables(store: Store, run: RunView) -> dict[str, Any]:
    """Per-class recall (pooled and per fold) and the pooled confusion matrix from stored predictions."""
    per_fold = {fold: store.predictions(run.run_id, fold)[1:3] for fold in sorted(run.folds)}
    classes = [str(c) for c in run.row.get("classes") or []]
    if not per_fold:
        return {"folds": [], "recall": [], "confusion": [], "classes": classes}
    labels = np.concatenate([y for y, _ in per_fold.values()])
    predictions = np.concatenate([p for _, p in per_fold.values()])
    n = max([len(classes)] + [int(a.max()) + 1 for a in (labels, predictions) if len(a)])
    classes += [f"class {i}" for i in range(len(classes), n)]
    pooled = per_class_recall(labels, predictions, None, n)
    fold_recall = {fold: per_class_recall(y, p, None, n) for fold, (y, p) in per_fold.items()}
    matrix = confusion_matrix(labels, predictions, None, n)
    support = matrix.sum(axis=1)
    recall = [{"name": name, "support": int(support[i]), "pooled": pooled[i],
               "folds": [fold_recall[f][i] for f in per_fold],
               "mean": mean_std(fold_recall[f][i] for f in per_fold)} for i, name in enumerate(classes)]
    shares = matrix / np.maximum(support, 1)[:, None]
    confusion = [{"name": name, "support": int(support[i]),
                  "cells": [{"count": int(c), "share": s if support[i] else math.nan, "alpha": float(s)}
                            for c, s in zip(matrix[i], shares[i])]} for i, name in enumerate(classes)]
    return {"folds": list(per_fold), "recall": recall, "confusion": confusion, "classes": classes}


def _chart(name: str, series: Mapping[int, list[tuple[int, float]]], selected: Mapping[int, Any],
           width: int = 300, height: int = 150) -> dict[str, Any]:
    """Geometry of one small SVG line chart: a polyline per fold, epochs counted from 1."""
    left, right, top, bottom = 52, 8, 8, 22
    points = {fold: [(e + 1, v) for e, v in values if _finite(v)] for fold, values in sorted(series.items())}
    xs = [x for values in points.values() for x, _ in values]
    ys = [y for values in points.values() for _, y in values]
    if not xs:
        return {"name": name, "empty": True, "width": width, "height": height}
    x_lo, x_hi, y_lo, y_hi = min(xs), max(xs), min(ys), max(ys)
    if y_hi == y_lo:
        y_lo, y_hi = y_lo - (abs(y_lo) or 1) * 0.1, y_hi + (abs(y_hi) or 1) * 0.1

    def sx(x: float) -> float:
        return left + (x - x_lo) / (x_hi - x_lo) * (width - left - right) if x_hi > x_lo else (left + width - right) / 2

    def sy(y: float) -> float:
        return top + (y_hi - y) / (y_hi - y_lo) * (height - top - bottom)

    lines, markers = [], []
    for index, (fold, values) in enumerate(points.items()):
        colour = FOLD_COLOURS[index % len(FOLD_COLOURS)]
        lines.append({"fold": fold, "colour": colour, "points": " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in values)})
        chosen = selected.get(fold)
        markers += [{"x": f"{sx(x):.1f}", "y": f"{sy(y):.1f}", "colour": colour, "fold": fold, "epoch": x,
                     "value": f"{y:.4g}"} for x, y in values if chosen is not None and x == chosen + 1]
    return {"name": name, "empty": False, "width": width, "height": height, "lines": lines, "markers": markers,
            "left": left, "right": width - right, "top": top, "bottom": height - bottom,
            "mid": f"{(top + height - bottom) / 2:.1f}", "x_lo": x_lo, "x_hi": x_hi,
            "y_lo": f"{y_lo:.3g}", "y_hi": f"{y_hi:.3g}"}


def _config_rows(config: Any) -> list[tuple[str, str]] | None:
    """The config as (dotted key, JSON value) rows, or None when it is not a mapping."""
    if not isinstance(config, Mapping):
        return None
    return [(key, json.dumps(value)) for key, value in sorted(flatten(config).items())]


def _copy_images(store: Store, run: RunView, out_dir: Path) -> list[dict[str, Any]]:
    """Copy the run's image artifacts into the site; (fold, name, path relative to the run page)."""
    images = []
    for artifact in run.artifacts:
        source = Path(artifact["path"])
        source = source if source.is_absolute() else store.artifacts_dir / source
        if artifact["kind"] != "image" or not source.is_file():
            continue
        target = out_dir / "runs" / "files" / safe_name(run.run_id) / f"fold-{artifact['fold']}-{safe_name(artifact['name'])}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        images.append({"fold": artifact["fold"], "name": artifact["name"],
                       "src": str(target.relative_to(out_dir / "runs")), "sha256": artifact["sha256"]})
    return images


def _run_context(store: Store, run: RunView, board: Board | None, out_dir: Path) -> dict[str, Any]:
    selected = {fold: info.get("selected_epoch") for fold, info in run.folds.items()}
    recorded = {name for metrics in run.metrics.values() for name in metrics}
    names = [name for name in metric_names([run]) if name in recorded]
    return {
        "run": run, "board": board, "metric_names": names,
        "metric_stats": {name: mean_std(run.values(name)) for name in names},
        "config_rows": _config_rows(run.row.get("config")),
        "tables": _class_tables(store, run),
        "images": _copy_images(store, run, out_dir),
        "charts": [_chart(name, series, selected) for name, series in sorted(run.curves.items())],
        "fold_colours": [(fold, FOLD_COLOURS[i % len(FOLD_COLOURS)])
                         for i, fold in enumerate(sorted({f for s in run.curves.values() for f in s}))],
    }


# --- rendering -------------------------------------------------------------------------------------

def _option_labels() -> dict[str, Mapping[str, Mapping[Any, str]]]:
    """Option words of the installed datasets (runs of datasets not installed get ``option=value``)."""
    return {name: spec.option_labels for name, spec in registry().datasets.items()}


def render_leaderboard(store: Store, out_dir: Path, paper_results: Iterable[PaperResult] | None = None) -> Path:
    """Write the static leaderboard of ``store`` into ``out_dir``; returns the path of ``index.html``.

    ``paper_results`` are the published rows (:func:`ferbench.paper_results.load_paper_results`) shown
    on the boards that hold their setting. A database without runs renders an empty index; a missing
    one raises (a mistyped path must not look like an empty database).
    """
    runs, fold_counts = _load_runs(store)
    out_dir = Path(out_dir)
    (out_dir / "runs").mkdir(parents=True, exist_ok=True)
    env = _environment()
    pretraining = [run for run in runs if run.kind == RunKind.PRETRAIN]
    scored = [run for run in runs if run.kind != RunKind.PRETRAIN]
    boards = build_boards(scored, fold_counts, list(paper_results or ()), _option_labels() if runs else {})
    common = {"version": __version__, "db_path": str(store.path), "generated": when(datetime.now().replace(microsecond=0))}

    def write(template: str, target: str, root: str, **context: Any) -> None:
        html = env.get_template(template).render(root=root, **common, **context)
        (out_dir / target).write_text(html, encoding="utf-8")

    (out_dir / "style.css").write_text(env.get_template("style.css").render(), encoding="utf-8")
    methods = sorted({str(run.row.get("method")) for board in boards for run in board.runs})
    write("index.html", "index.html", "", boards=boards, methods=methods, n_runs=len(runs),
          n_pretraining=len(pretraining))
    if pretraining:
        write("pretraining.html", "pretraining.html", "", runs=pretraining)
    for board in boards:
        write("dataset.html", board.page, "", board=board)
        for run in board.runs:
            write("run.html", run.page, "../", **_run_context(store, run, board, out_dir))
    for run in pretraining:
        write("run.html", run.page, "../", **_run_context(store, run, None, out_dir))
    return out_dir / "index.html"
