"""Classification metrics computed from stored predictions, and their aggregation over folds/seeds.

Functions take ``(labels, predictions, probabilities, num_classes)`` so they can be registered as
:class:`~ferbench.specs.MetricSpec` by any plugin. Classes absent from the test labels are left out of
class-averaged metrics (their recall is undefined) and reported as NaN per class.
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
    """Unweighted mean of per-class F1 over the classes present in the test labels (F1 = 0 when a
    present class is never predicted correctly)."""
    matrix = confusion_matrix(labels, predictions, None, num_classes).astype(float)
    true_pos = np.diag(matrix)
    support, predicted = matrix.sum(axis=1), matrix.sum(axis=0)
    denominator = support + predicted
    f1 = np.divide(2 * true_pos, denominator, out=np.zeros_like(true_pos), where=denominator > 0)
    present = support > 0
    return float(f1[present].mean()) if present.any() else math.nan


def mean_std(values: Iterable[float]) -> dict[str, float]:
    """Mean, sample standard deviation (ddof=1; 0 for a single value) and count, ignoring NaN."""
    array = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if not len(array):
        return {"mean": math.nan, "std": math.nan, "n": 0}
    std = float(array.std(ddof=1)) if len(array) > 1 else 0.0
    return {"mean": float(array.mean()), "std": std, "n": int(len(array))}


def aggregate(per_fold: Mapping[Any, Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean and std over folds (or over runs) of every scalar metric."""
    names = sorted({name for metrics in per_fold.values() for name, value in metrics.items()
                    if isinstance(value, (int, float))})
    return {name: mean_std(m.get(name, math.nan) for m in per_fold.values()) for name in names}
