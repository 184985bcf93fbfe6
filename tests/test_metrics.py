"""Metrics agree with scikit-learn's reference implementations."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from sklearn import metrics as sk
from sklearn.exceptions import UndefinedMetricWarning

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


def test_absent_class_is_left_out_of_mean_class_accuracy_but_counts_in_f1_when_predicted() -> None:
    y = np.array([0, 0, 1, 1])
    p = np.array([0, 1, 1, 2])  # class 2 is predicted but absent from the fold
    recall = metrics.per_class_recall(y, p, None, 3)
    assert recall[:2].tolist() == [0.5, 0.5] and math.isnan(recall[2])
    assert metrics.mean_class_accuracy(y, p, None, 3) == pytest.approx(0.5)
    assert metrics.macro_f1(y, p, None, 3) == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)
    assert metrics.macro_f1(y, p, None, 3) == pytest.approx(sk.f1_score(y, p, labels=range(3), average="macro"))


def _sklearn_macro_f1(y: np.ndarray, p: np.ndarray, k: int, zero_division: object = "warn") -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        return float(sk.f1_score(y, p, labels=range(k), average="macro", zero_division=zero_division))


def test_macro_f1_matches_sklearn_on_small_folds() -> None:
    """Against ``f1_score(average="macro", labels=range(K))``: equal whenever every class is in the fold
    or predicted; a class neither present nor predicted is left out (scikit-learn's zero_division=nan)
    where scikit-learn's default would count it as 0."""
    rng = np.random.default_rng(0)
    k, agreed, differed = 6, 0, 0
    for _ in range(120):
        n = int(rng.integers(3, 12))
        y, p = rng.integers(0, k, n), np.where(rng.random(n) < 0.5, rng.integers(0, k, n), 0)
        p = np.where(rng.random(n) < 0.3, y, p)
        ours = metrics.macro_f1(y, p, None, k)
        assert ours == pytest.approx(_sklearn_macro_f1(y, p, k, np.nan))
        if set(y) | set(p) == set(range(k)):
            assert ours == pytest.approx(_sklearn_macro_f1(y, p, k))
            agreed += 1
        else:
            assert ours > _sklearn_macro_f1(y, p, k) or ours == _sklearn_macro_f1(y, p, k) == 0
            differed += 1
    assert agreed > 10 and differed > 10


def test_seed_fold_stats_keep_seed_and_fold_spread_apart() -> None:
    runs = [[0.6, 0.8], [0.7, 0.7], [0.5, 0.9, float("nan")]]  # fold means 0.7, 0.7, 0.7
    stats = metrics.seed_fold_stats(runs)
    assert stats["mean"] == pytest.approx(0.7) and stats["seed_std"] == pytest.approx(0.0)
    fold_stds = [np.std(r[:2], ddof=1) for r in runs]
    assert stats["fold_std"] == pytest.approx(np.mean(fold_stds)) and (stats["seeds"], stats["folds"]) == (3, 2)
    pooled = metrics.mean_std(v for r in runs for v in r)["std"]
    assert pooled > 0.1  # pooling fold x seed values would report the fold spread as if it were over seeds
    one = metrics.seed_fold_stats([[0.5, 0.7]])
    assert math.isnan(one["seed_std"]) and one["fold_std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    spread = metrics.seed_fold_stats([[0.5], [0.7]])
    assert spread["seed_std"] == pytest.approx(np.std([0.5, 0.7], ddof=1)) and math.isnan(spread["fold_std"])
    assert metrics.seed_fold_stats([[], [float("nan")]])["seeds"] == 0


def test_mean_std_and_aggregate() -> None:
    assert metrics.mean_std([0.5, 0.7]) == pytest.approx({"mean": 0.6, "std": np.std([0.5, 0.7], ddof=1), "n": 2})
    assert metrics.mean_std([0.5]) == {"mean": 0.5, "std": 0.0, "n": 1}
    summary = metrics.aggregate({0: {"accuracy": 0.5, "macro_f1": 0.1}, 1: {"accuracy": 0.7, "macro_f1": 0.3}})
    assert summary["accuracy"]["mean"] == pytest.approx(0.6) and summary["macro_f1"]["n"] == 2
