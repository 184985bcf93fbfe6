"""What a run page and its per-sample browser show: per-class recall and the confusion matrix from the stored
predictions, training-curve charts, copied image outputs, and the test predictions sample by sample.

The sample browser embeds at most :data:`SAMPLE_ROWS_CAP` predictions per run (a 30,000-image test set
would otherwise make a page of several megabytes) and renders the first :data:`SAMPLE_PAGE_ROWS` as a
plain table for browsers without JavaScript; the rest of a larger run is in the site's Parquet export
(``data/predictions.parquet``).
"""
from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .boards import Board, RunView, metric_names, safe_name
from .bootstrap import RunSamples
from .config import flatten
from .metrics import confusion_matrix, mean_std, per_class_recall
from .store import Store

FOLD_COLOURS = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c",
                "#0891b2", "#ca8a04", "#db2777", "#4b5563", "#65a30d")
SAMPLE_ROWS_CAP = 10_000
SAMPLE_PAGE_ROWS = 500


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float, np.floating, np.integer)) and math.isfinite(value)


def class_names(run: RunView, samples: RunSamples) -> list[str]:
    """The run's classes, extended with ``class K`` for any index its predictions use beyond them."""
    classes = [str(c) for c in run.row.get("classes") or []]
    largest = max([int(a.max()) for part in samples.folds.values() for a in (part.labels, part.predictions)
                   if len(a)], default=-1)
    return classes + [f"class {i}" for i in range(len(classes), largest + 1)]


def class_tables(run: RunView, samples: RunSamples) -> dict[str, Any]:
    """Per-class recall (pooled and per fold) and the pooled confusion matrix from the stored predictions."""
    classes = class_names(run, samples)
    per_fold = {fold: (part.labels, part.predictions) for fold, part in sorted(samples.folds.items())}
    if not per_fold:
        return {"folds": [], "recall": [], "confusion": [], "classes": classes}
    n = len(classes)
    labels = np.concatenate([y for y, _ in per_fold.values()])
    predictions = np.concatenate([p for _, p in per_fold.values()])
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


def sample_rows(run: RunView, samples: RunSamples, cap: int = SAMPLE_ROWS_CAP) -> dict[str, Any]:
    """The run's test predictions as ``[fold, sample id, true, predicted, confidence]`` rows (class indices),
    at most ``cap`` of them, with the class names and the total count."""
    rows = [[fold, sid, int(y), int(p), round(float(c), 4) if _finite(c) else None]
            for fold, part in sorted(samples.folds.items())
            for sid, y, p, c in zip(part.ids, part.labels.tolist(), part.predictions.tolist(), part.confidence.tolist())]
    return {"classes": class_names(run, samples), "rows": rows[:cap], "total": len(rows), "cap": cap,
            "page_rows": SAMPLE_PAGE_ROWS, "folds": len(samples.folds) > 1}


def chart(name: str, series: Mapping[int, list[tuple[int, float]]], selected: Mapping[int, Any],
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


def config_rows(config: Any) -> list[tuple[str, str]] | None:
    """The config as (dotted key, JSON value) rows, or None when it is not a mapping."""
    import json

    if not isinstance(config, Mapping):
        return None
    return [(key, json.dumps(value)) for key, value in sorted(flatten(config).items())]


def copy_images(store: Store, run: RunView, out_dir: Path) -> list[dict[str, Any]]:
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


def run_context(store: Store, run: RunView, board: Board | None, samples: RunSamples, out_dir: Path) -> dict[str, Any]:
    """Everything the run page template reads."""
    selected = {fold: info.get("selected_epoch") for fold, info in run.folds.items()}
    recorded = {name for metrics in run.metrics.values() for name in metrics}
    names = [name for name in metric_names([run]) if name in recorded]
    return {
        "run": run, "board": board, "metric_names": names,
        "metric_stats": {name: mean_std(run.values(name)) for name in names},
        "config_rows": config_rows(run.row.get("config")),
        "tables": class_tables(run, samples),
        "n_samples": samples.size,
        "images": copy_images(store, run, out_dir),
        "charts": [chart(name, series, selected) for name, series in sorted(run.curves.items())],
        "fold_colours": [(fold, FOLD_COLOURS[i % len(FOLD_COLOURS)])
                         for i, fold in enumerate(sorted({f for s in run.curves.values() for f in s}))],
    }
