"""Classification metrics computed from stored predictions, and their aggregation over folds/seeds.

Functions take ``(labels, predictions, probabilities, num_classes)`` so they can be registered as
:class:`~ferbench.specs.MetricSpec` by any plugin. Classes absent from the test labels have no recall:
they are left out of mean class accuracy and reported as NaN per class. Macro-F1 counts every class
that is in the test labels *or* predicted (a predicted class absent from the fold has F1 0), and
leaves out only classes neither present nor predicted, whose F1 is 0/0: this equals scikit-learn's
``f1_score(average="macro", labels=range(K), zero_division=np.nan)``; scikit-learn's default
(``zero_division="warn"``) would count those classes as 0 instead, penalising every fold that lacks a
rare class.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

import numpy as np


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, probabilities: np.ndarray | None,
                     num_classes: int) -> np.ndarray:
    """Counts ``[true class, predicted class]``."""
    flat = np.asarray(labels) * num_classes + np.asarray(predictions)
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def accuracy(labels: np.ndarray, predictions: np.ndarray, probabilities: np.ndarray | None,
             num_classes: int) -> float:
    """Overall accuracy: the fraction of test samples predicted correctly."""
    return float(np.mean(np.asarray(labels) == np.asarray(predictions))) if len(labels) else math.nan


def per_class_recall(labels: np.ndarray, predictions: np.ndarray, probabilities: np.ndarray | None,
                     num_classes: int) -> np.ndarray:
    """Recall of each class (NaN for a class with no test sample)."""
    matrix = confusion_matrix(labels, predictions, None, num_classes)
    support = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(matrix) / np.maximum(support, 1), np.nan)


def mean_class_accuracy(labels: np.ndarray, predictions: np.ndarray, probabilities: np.ndarray | None,
                        num_classes: int) -> float:
    """Mean of per-class recalls over the classes present in the test labels (a.k.a. balanced accuracy)."""
    recalls = per_class_recall(labels, predictions, None, num_classes)
    present = recalls[~np.isnan(recalls)]
    return float(present.mean()) if len(present) else math.nan


def macro_f1(labels: np.ndarray, predictions: np.ndarray, probabilities: np.ndarray | None,
             num_classes: int) -> float:
    """Unweighted mean of per-class F1 over the classes in the test labels or the predictions (F1 = 0
    when such a class is never predicted correctly); classes neither present nor predicted are left out."""
    matrix = confusion_matrix(labels, predictions, None, num_classes).astype(float)
    true_pos = np.diag(matrix)
    support, predicted = matrix.sum(axis=1), matrix.sum(axis=0)
    denominator = support + predicted
    f1 = np.divide(2 * true_pos, denominator, out=np.zeros_like(true_pos), where=denominator > 0)
    counted = denominator > 0
    return float(f1[counted].mean()) if counted.any() else math.nan


def mean_std(values: Iterable[float]) -> dict[str, float]:
    """Mean, sample standard deviation (ddof=1; 0 for a single value) and count, ignoring NaN."""
    array = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if not len(array):
        return {"mean": math.nan, "std": math.nan, "n": 0}
    std = float(array.std(ddof=1)) if len(array) > 1 else 0.0
    return {"mean": float(array.mean()), "std": std, "n": int(len(array))}


def seed_fold_stats(per_run: Iterable[Iterable[float]]) -> dict[str, float]:
    """Mean and spreads of a metric over runs (seeds) x folds, keeping the two variances apart.

    ``per_run`` holds each run's per-fold values. ``mean`` is the mean of the runs' fold means,
    ``seed_std`` the sample std of those fold means over runs (NaN with one run), ``fold_std`` the mean
    over runs of each run's sample std over its folds (NaN when no run has two folds); ``seeds`` and
    ``folds`` count the runs and the largest number of folds of a run. NaN values are ignored.
    """
    runs = [stats for stats in (mean_std(values) for values in per_run) if stats["n"]]
    if not runs:
        return {"mean": math.nan, "seed_std": math.nan, "fold_std": math.nan, "seeds": 0, "folds": 0}
    means = mean_std(stats["mean"] for stats in runs)
    fold_stds = [stats["std"] for stats in runs if stats["n"] > 1]
    return {"mean": means["mean"], "seed_std": means["std"] if len(runs) > 1 else math.nan,
            "fold_std": float(np.mean(fold_stds)) if fold_stds else math.nan,
            "seeds": len(runs), "folds": max(stats["n"] for stats in runs)}


def aggregate(per_fold: Mapping[Any, Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean and std over folds (or over runs) of every scalar metric."""
    names = sorted({name for metrics in per_fold.values() for name, value in metrics.items()
                    if isinstance(value, (int, float))})
    return {name: mean_std(m.get(name, math.nan) for m in per_fold.values()) for name in names}
