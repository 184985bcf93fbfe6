"""FER+ vote counts -> labels: the rules of Microsoft's reference reader (datasets.md §3.4, §3.5).

Votes are ``[N, 10]`` counts in the column order neutral, happiness, surprise, sadness, anger, disgust,
fear, contempt, unknown, NF. Every rule returns hard labels in ``0..7`` (BASIC8 order, which is the
FER+ column order) with ``-1`` for a dropped image; the package docstring states each rule.
"""
from __future__ import annotations

import numpy as np

EMOTIONS = 8  # columns 0..7 are emotions; 8 = unknown, 9 = NF (not a face)
COLUMNS = 10
DROPPED = -1


def outliers_removed(votes: np.ndarray) -> np.ndarray:
    """Votes with every count of 1 (or less) set to 0, as Microsoft does before every mode."""
    votes = np.asarray(votes, dtype=np.float64)
    return np.where(votes <= 1, 0.0, votes)


def majority(votes: np.ndarray) -> np.ndarray:
    """Microsoft ``majority``: the top class of the outlier-free votes if it holds > 50% of them."""
    kept = outliers_removed(votes)
    top = kept.argmax(axis=1)
    wins = kept.max(axis=1) > 0.5 * kept.sum(axis=1)
    return np.where(wins & (top < EMOTIONS), top, DROPPED)


def plurality(votes: np.ndarray, ties: str = "first") -> np.ndarray:
    """Argmax of the raw votes; ties to the first column (``first``) or dropped (``drop``)."""
    votes = np.asarray(votes)
    top = votes.argmax(axis=1)
    best = votes.max(axis=1)
    valid = (top < EMOTIONS) & (best > 0)
    if ties == "drop":
        valid &= (votes == best[:, None]).sum(axis=1) == 1
    return np.where(valid, top, DROPPED)


def _distribution(raw: np.ndarray) -> np.ndarray | None:
    """Microsoft ``probability``/``crossentropy`` processing of one image's votes (10 values, not
    normalised), or None when the image is discarded."""
    remaining = list(outliers_removed(raw))
    total = sum(remaining)
    taken = [0.0] * COLUMNS
    covered, count, valid = 0.0, 0, True
    while covered < 0.75 * total and count < 3 and valid:
        level = max(remaining)
        for column in range(COLUMNS):
            if remaining[column] != level:
                continue
            taken[column], remaining[column] = level, 0.0
            covered += level
            count += 1
            if column >= EMOTIONS:  # unknown/NF reached: stop; drop it if emotions were taken before it
                valid = False
                if sum(taken) > level:
                    taken[column] = 0.0
                    count -= 1
                break
    if sum(taken) <= 0.5 * total or count > 3:
        return None
    return np.asarray(taken)


def probability(votes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Soft targets ``[N, 8]`` (rows of dropped images are zero) and hard labels (their argmax, first
    column on ties; -1 where dropped, including when unknown/NF wins)."""
    votes = np.asarray(votes)
    targets = np.zeros((len(votes), EMOTIONS), dtype=np.float64)
    labels = np.full(len(votes), DROPPED, dtype=np.int64)
    for row, raw in enumerate(votes):
        taken = _distribution(raw)
        if taken is None or taken.argmax() >= EMOTIONS:
            continue
        targets[row] = taken[:EMOTIONS] / taken[:EMOTIONS].sum()
        labels[row] = targets[row].argmax()
    return targets, labels


def labels_for(mode: str, votes: np.ndarray, ties: str = "first") -> tuple[np.ndarray, np.ndarray | None]:
    """``(hard labels, soft targets or None)`` for ``mode`` in majority / plurality / probability."""
    if mode == "majority":
        return majority(votes), None
    if mode == "plurality":
        return plurality(votes, ties), None
    if mode == "probability":
        targets, labels = probability(votes)
        return labels, targets
    raise ValueError(f"unknown FERPlus label mode {mode!r}")
