"""Metrics agree with scikit-learn's reference implementations."""
from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as sk

from ferbench import metrics


@pytest.fixture
def predictions() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    labels = rng.choice(7, size=500, p=[0.3, 0.3, 0.1, 0.1, 0.1, 0.05, 0.05])
    noisy = np.where(rng.random(500) < 0.4, rng.integers(0, 7, 500), labels)
    return labels, noisy


def test_against_sklearn(predictions: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = predictions
    assert metrics.accuracy(y, p, None, 7) == pytest.approx(sk.accuracy_score(y, p))
    assert metrics.mean_class_accuracy(y, p, None, 7) == pytest.approx(sk.balanced_accuracy_score(y, p))
    assert metrics.macro_f1(y, p, None, 7) == pytest.approx(sk.f1_score(y, p, average="macro"))
    assert np.array_equal(metrics.confusion_matrix(y, p, None, 7), sk.confusion_matrix(y, p, labels=range(7)))
    assert np.allclose(metrics.per_class_recall(y, p, None, 7), sk.recall_score(y, p, average=None))


def test_absent_class_is_left_out_of_class_averages() -> None:
    y = np.array([0, 0, 1, 1])
    p = np.array([0, 1, 1, 2])
    recall = metrics.per_class_recall(y, p, None, 3)
    assert recall[:2].tolist() == [0.5, 0.5] and math.isnan(recall[2])
    assert metrics.mean_class_accuracy(y, p, None, 3) == pytest.approx(0.5)
    assert metrics.macro_f1(y, p, None, 3) == pytest.approx(sk.f1_score(y, p, labels=[0, 1], average="macro"))


def test_mean_std_and_aggregate() -> None:
    assert metrics.mean_std([0.5, 0.7]) == pytest.approx({"mean": 0.6, "std": np.std([0.5, 0.7], ddof=1), "n": 2})
    assert metrics.mean_std([0.5]) == {"mean": 0.5, "std": 0.0, "n": 1}
    summary = metrics.aggregate({0: {"accuracy": 0.5, "macro_f1": 0.1}, 1: {"accuracy": 0.7, "macro_f1": 0.3}})
    assert summary["accuracy"]["mean"] == pytest.approx(0.6) and summary["macro_f1"]["n"] == 2
