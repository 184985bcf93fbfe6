"""Bootstrap statistics of boards: per-draw metrics, intervals that cover, paired ties, the per-run cache."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ferbench import bootstrap, metrics
from ferbench.bootstrap import FoldSamples, RunSamples


def _predictions(n: int, accuracy: float, classes: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    wrong = (labels + rng.integers(1, classes, n)) % classes
    return labels, np.where(rng.random(n) < accuracy, labels, wrong)


def _run(run_id: str, labels: np.ndarray, predictions: np.ndarray, folds: int = 1) -> RunSamples:
    samples = RunSamples(run_id)
    for fold, rows in enumerate(np.array_split(np.arange(len(labels)), folds)):
        samples.folds[fold] = FoldSamples([f"s{i:05d}" for i in rows], labels[rows], predictions[rows],
                                          np.full(len(rows), 0.5))
    return samples


def test_draw_metrics_are_ferbench_metrics_on_the_confusion_matrix() -> None:
    labels, predictions = _predictions(300, 0.6, classes=7)
    labels[labels == 6] = 0  # a class absent from the test labels but predicted
    confusion = metrics.confusion_matrix(labels, predictions, None, 7)
    for name, fn in bootstrap.DRAW_METRICS.items():
        assert fn(confusion[None])[0] == pytest.approx(getattr(metrics, name)(labels, predictions, None, 7))


def test_draws_are_seeded_by_the_test_set_and_paired_between_runs() -> None:
    labels, predictions = _predictions(400, 0.7)
    first = bootstrap.fold_draws(labels, predictions, 5, "manifest-a", 0, draws=200)
    again = bootstrap.fold_draws(labels, predictions, 5, "manifest-a", 0, draws=200)
    other_set = bootstrap.fold_draws(labels, predictions, 5, "manifest-b", 0, draws=200)
    assert all(np.array_equal(first[name], again[name]) for name in first)
    assert not np.array_equal(first["accuracy"], other_set["accuracy"])
    # a second run scored on the same test set is scored on the same redraws: one more correct sample
    # moves every draw's accuracy by 0 or by a multiple of 1/n, never at random
    better = predictions.copy()
    miss = int(np.flatnonzero(better != labels)[0])
    better[miss] = labels[miss]
    shift = bootstrap.fold_draws(labels, better, 5, "manifest-a", 0, draws=200)["accuracy"] - first["accuracy"]
    assert (shift >= 0).all() and np.allclose(shift * 400, np.round(shift * 400))


def test_interval_covers_the_true_accuracy_about_95_percent_of_the_time() -> None:
    covered = 0
    for trial in range(100):
        labels, predictions = _predictions(400, 0.7, seed=trial)
        low, high = bootstrap.interval(bootstrap.fold_draws(labels, predictions, 5, f"set-{trial}", 0, draws=400)["accuracy"])
        covered += low <= 0.7 <= high
    assert 88 <= covered <= 99


def test_entry_intervals_narrow_with_more_test_samples_and_hold_the_mean() -> None:
    widths = []
    for n in (200, 5000):
        labels, predictions = _predictions(n, 0.7)
        run = bootstrap.run_draws(_run(f"r{n}", labels, predictions, folds=2), 5, f"m{n}", None, draws=300)
        chosen = bootstrap.fold_choice([0, 1], f"board{n}", 300)
        values = bootstrap.entry_draws([run["accuracy"]], [0, 1], chosen, "entry")
        low, high = bootstrap.interval(values)
        assert low <= float(np.mean(labels == predictions)) <= high
        widths.append(high - low)
    assert widths[1] < widths[0] / 3


def test_neighbours_that_a_paired_bootstrap_cannot_tell_apart_share_a_rank() -> None:
    labels, strong = _predictions(600, 0.8, seed=1)
    _, weak = _predictions(600, 0.5, seed=2)
    near = strong.copy()
    near[np.flatnonzero(near == labels)[:3]] = (labels[np.flatnonzero(near == labels)[:3]] + 1) % 5  # 3 fewer right
    chosen = bootstrap.fold_choice([0], "board", 500)
    draws = [bootstrap.entry_draws([bootstrap.run_draws(_run(name, labels, p), 5, "m", None, 500)["accuracy"]],
                                   [0], chosen, name)
             for name, p in (("strong", strong), ("near", near), ("weak", weak))]
    steps = bootstrap.shared_ranks(draws)
    assert [(s.rank, s.tied) for s in steps] == [(1, False), (1, True), (3, False)]
    assert steps[1].difference[0] <= 0 <= steps[1].difference[1] and steps[2].difference[0] > 0
    assert bootstrap.shared_ranks([None, draws[0]])[1].rank == 2  # an entry without draws never ties


def test_run_draws_are_cached_by_run_and_predictions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    labels, predictions = _predictions(300, 0.6)
    run = _run("r1", labels, predictions, folds=3)
    computed = bootstrap.run_draws(run, 5, "m", tmp_path, draws=50)
    assert len(list(tmp_path.glob("*.npz"))) == 1 and set(computed["accuracy"]) == {0, 1, 2}

    def recomputed(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cache was not used")

    monkeypatch.setattr(bootstrap, "fold_draws", recomputed)
    cached = bootstrap.run_draws(run, 5, "m", tmp_path, draws=50)
    assert all(np.array_equal(cached[name][fold], computed[name][fold]) for name in computed for fold in computed[name])
    run.folds[0].predictions[0] = (run.folds[0].predictions[0] + 1) % 5  # other predictions, another key
    with pytest.raises(AssertionError, match="cache was not used"):
        bootstrap.run_draws(run, 5, "m", tmp_path, draws=50)
