"""Bootstrap statistics of leaderboard entries: 95% intervals from stored predictions, ties between ranks.

Test samples: each fold's stored test predictions are redrawn ``DRAWS`` times with replacement. The
draws depend only on the test set (the manifest hash, the fold, the sample count) and :data:`SEED`, so all
runs scored on one test set see the same draws (comparisons between them are paired) and a page
rendered twice shows the same intervals. A draw's scores come from its confusion matrix
(:data:`DRAW_METRICS`: accuracy, mean class accuracy, macro-F1, defined as :mod:`ferbench.metrics`
defines them); other scalar metrics get no interval. The per-run result -- per metric, folds x draws --
is cached in a file keyed by the run id and a hash of its predictions (:func:`run_draws`).

Entries: a draw of an entry redraws its runs (seeds) and the board's folds with replacement (the folds'
draw is shared by the board's entries) and averages the drawn runs' scores on the drawn folds in that
draw; the 95% interval is the 2.5th..97.5th percentile of those averages. Ranks: entries are ordered
by the mean of the ranked metric, and each is compared with its neighbour above on the paired difference
of their draws; where the difference's 95% interval holds 0 the two share a rank.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from .settings import ACCURACY, MACRO_F1, MEAN_CLASS_ACCURACY

DRAWS = 1000
SEED = 14
LEVEL = 0.95
CACHE_VERSION = 1
_CHUNK_CELLS = 4_000_000  # sample indices drawn at once (memory bound for large test sets)


# --- metrics of a stack of confusion matrices [..., true, predicted] ------------------------------------

def _accuracy(confusion: np.ndarray) -> np.ndarray:
    total = confusion.sum(axis=(-2, -1))
    return np.trace(confusion, axis1=-2, axis2=-1) / np.maximum(total, 1)


def _mean_class_accuracy(confusion: np.ndarray) -> np.ndarray:
    support = confusion.sum(axis=-1)
    recall = np.diagonal(confusion, axis1=-2, axis2=-1) / np.maximum(support, 1)
    present = support > 0
    return np.where(present, recall, 0).sum(axis=-1) / np.maximum(present.sum(axis=-1), 1)


def _macro_f1(confusion: np.ndarray) -> np.ndarray:
    true_pos = np.diagonal(confusion, axis1=-2, axis2=-1)
    denominator = confusion.sum(axis=-1) + confusion.sum(axis=-2)
    counted = denominator > 0
    f1 = 2 * true_pos / np.maximum(denominator, 1)
    return np.where(counted, f1, 0).sum(axis=-1) / np.maximum(counted.sum(axis=-1), 1)


#: Scalar metrics computed per draw from the confusion matrix (the others get no interval).
DRAW_METRICS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    ACCURACY: _accuracy, MEAN_CLASS_ACCURACY: _mean_class_accuracy, MACRO_F1: _macro_f1}


# --- stored predictions ---------------------------------------------------------------------------------

@dataclass
class FoldSamples:
    """One fold's stored test predictions, ordered by sample id."""

    ids: list[str]
    labels: np.ndarray
    predictions: np.ndarray
    confidence: np.ndarray  # the predicted class's probability


@dataclass
class RunSamples:
    """A run's stored test predictions, per fold."""

    run_id: str
    folds: dict[int, FoldSamples] = field(default_factory=dict)

    def digest(self) -> str:
        """A hash of the run's stored (fold, sample id, label, prediction) rows."""
        digest = hashlib.sha256()
        for fold, samples in sorted(self.folds.items()):
            digest.update(json.dumps([fold, samples.ids]).encode())
            digest.update(samples.labels.astype(np.int64).tobytes() + samples.predictions.astype(np.int64).tobytes())
        return digest.hexdigest()[:20]

    @property
    def size(self) -> int:
        return sum(len(samples.ids) for samples in self.folds.values())


def load_run_samples(store: object, run_id: str) -> RunSamples:
    """The stored predictions of ``run_id`` (one read of the predictions table)."""
    with store.connect(read_only=True) as con:  # type: ignore[attr-defined]
        rows = con.execute("SELECT fold, sample_id, label, prediction, list_max(probs) FROM predictions "
                           "WHERE run_id = ? ORDER BY fold, sample_id", [run_id]).fetchall()
    grouped: dict[int, list[tuple]] = {}
    for row in rows:
        grouped.setdefault(int(row[0]), []).append(row)
    samples = RunSamples(run_id)
    for fold, fold_rows in grouped.items():
        samples.folds[fold] = FoldSamples(
            ids=[str(r[1]) for r in fold_rows], labels=np.array([r[2] for r in fold_rows], dtype=np.int64),
            predictions=np.array([r[3] for r in fold_rows], dtype=np.int64),
            confidence=np.array([math.nan if r[4] is None else r[4] for r in fold_rows], dtype=np.float64))
    return samples


# --- draws of one run -----------------------------------------------------------------------------------

def _key_int(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256(json.dumps(parts).encode()).digest()[:8], "little")


def fold_draws(labels: np.ndarray, predictions: np.ndarray, num_classes: int, test_key: str, fold: int,
               draws: int = DRAWS, seed: int = SEED) -> dict[str, np.ndarray]:
    """Each :data:`DRAW_METRICS` score on ``draws`` redraws (with replacement) of one fold's test samples.

    The redraws depend on (``seed``, ``test_key``, ``fold``, sample count) only, so every run scored on
    the same test set is scored on the same redraws."""
    n = len(labels)
    if n == 0:
        return {name: np.full(draws, math.nan) for name in DRAW_METRICS}
    rng = np.random.default_rng([seed, _key_int(test_key), fold, n])
    codes = labels.astype(np.int64) * num_classes + predictions.astype(np.int64)
    cells = num_classes * num_classes
    chunk = max(1, min(draws, _CHUNK_CELLS // n))
    confusions = []
    for start in range(0, draws, chunk):
        size = min(chunk, draws - start)
        drawn = codes[rng.integers(0, n, size=(size, n))] + (np.arange(size) * cells)[:, None]
        confusions.append(np.bincount(drawn.ravel(), minlength=size * cells).reshape(size, num_classes, num_classes))
    confusion = np.concatenate(confusions)
    return {name: fn(confusion) for name, fn in DRAW_METRICS.items()}


def run_draws(samples: RunSamples, num_classes: int, test_key: str, cache_dir: Path | None,
              draws: int = DRAWS, seed: int = SEED) -> dict[str, dict[int, np.ndarray]]:
    """Per metric and fold, the run's scores on the test set's redraws; read from ``cache_dir`` when a
    file for the same run, predictions, test set and draw settings is there, and written there otherwise
    (an unwritable cache folder only costs the recomputation)."""
    key = hashlib.sha256(json.dumps([CACHE_VERSION, samples.run_id, samples.digest(), test_key, num_classes,
                                     draws, seed]).encode()).hexdigest()[:24]
    path = cache_dir / f"{key}.npz" if cache_dir else None
    if path and path.is_file():
        try:
            with np.load(path) as stored:
                return _unpack(stored)
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache file is recomputed
    result = {name: {} for name in DRAW_METRICS}  # type: dict[str, dict[int, np.ndarray]]
    for fold, fold_samples in samples.folds.items():
        for name, values in fold_draws(fold_samples.labels, fold_samples.predictions, num_classes, test_key, fold,
                                       draws, seed).items():
            result[name][fold] = values
    if path:
        _save(path, result)
    return result


def _unpack(stored: Mapping[str, np.ndarray]) -> dict[str, dict[int, np.ndarray]]:
    result: dict[str, dict[int, np.ndarray]] = {name: {} for name in DRAW_METRICS}
    for entry in stored.files:  # type: ignore[attr-defined]
        name, fold = entry.rsplit("@", 1)
        result.setdefault(name, {})[int(fold)] = stored[entry]
    return result


def _save(path: Path, result: Mapping[str, Mapping[int, np.ndarray]]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.stem}.{os.getpid()}.partial.npz")
        np.savez_compressed(partial, **{f"{name}@{fold}": values for name, per_fold in result.items()
                                        for fold, values in per_fold.items()})
        partial.replace(path)
    except OSError:
        pass


# --- entries: intervals and ranks -----------------------------------------------------------------------

def fold_choice(folds: Sequence[int], key: str, draws: int = DRAWS, seed: int = SEED) -> np.ndarray:
    """Positions into ``folds`` drawn with replacement, ``[draws, len(folds)]``: shared by a board's entries."""
    rng = np.random.default_rng([seed, _key_int("folds", key)])
    return rng.integers(0, len(folds), size=(draws, len(folds)))


def entry_draws(runs: Sequence[Mapping[int, np.ndarray]], folds: Sequence[int], chosen_folds: np.ndarray,
                key: str, seed: int = SEED) -> np.ndarray:
    """One metric's entry score per draw: the entry's runs redrawn (seeded by ``key``), the board's folds as
    ``chosen_folds`` draws them, the mean of the drawn runs' scores on the drawn folds in that draw.
    A run without a drawn fold is left out of that draw's mean (NaN where no run has one)."""
    draws = chosen_folds.shape[0]
    scores = np.full((len(runs), len(folds), draws), math.nan)
    for r, per_fold in enumerate(runs):
        for f, fold in enumerate(folds):
            if fold in per_fold:
                scores[r, f] = per_fold[fold]
    chosen_runs = np.random.default_rng([seed, _key_int("runs", key)]).integers(0, len(runs), size=(draws, len(runs)))
    picked = scores[chosen_runs[:, :, None], chosen_folds[:, None, :], np.arange(draws)[:, None, None]]
    with warnings.catch_warnings():  # an all-NaN draw is NaN, without "mean of empty slice" noise
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(picked.reshape(draws, -1), axis=1)


def interval(values: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The central ``level`` percentile interval of ``values`` (NaN draws ignored; NaN when none is left)."""
    finite = values[np.isfinite(values)]
    if not len(finite):
        return (math.nan, math.nan)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return (float(low), float(high))


@dataclass(frozen=True)
class RankStep:
    """An entry's shared rank and the paired comparison with its neighbour above."""

    rank: int
    tied: bool  # shares the rank of the entry above
    difference: tuple[float, float] | None  # 95% interval of (entry above - this entry), as fractions


def shared_ranks(draws: Sequence[np.ndarray | None], level: float = LEVEL) -> list[RankStep]:
    """Ranks of entries already ordered best first, given each one's draws of the ranked metric (None
    where it has none): an entry shares its neighbour's rank when the paired difference's interval holds 0."""
    steps: list[RankStep] = []
    for position, current in enumerate(draws):
        above = draws[position - 1] if position else None
        if above is None or current is None:
            steps.append(RankStep(position + 1, False, None))
            continue
        low, high = interval(above - current, level)
        tied = bool(low <= 0 <= high)
        steps.append(RankStep(steps[-1].rank if tied else position + 1, tied, (low, high)))
    return steps

