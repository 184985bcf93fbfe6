"""What a fold's training part tells a method before it trains: normalisation statistics, class
counts, sampling weights and the mean target distribution per class (the prior of label smoothing)."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from .data import FERData

#: Images sampled from the training part to estimate per-fold statistics.
STATISTICS_SAMPLE = 4096


def normalization(data_cfg: Mapping[str, Any], arrays: Mapping[str, np.ndarray], train_rows: np.ndarray
                  ) -> dict[str, tuple[list[float], list[float]]]:
    """Per-modality channel mean/std: the config's, or the training part's own when
    ``data.fold_statistics`` (z-scoring per fold, as the RGB-D thesis does); with
    ``data.fold_statistics_foreground`` only non-black pixels count, so a masked face's black
    background does not drag the statistics (the thesis excludes it)."""
    stats = {"rgb": (data_cfg["mean"], data_cfg["std"]), "depth": (data_cfg["depth_mean"], data_cfg["depth_std"])}
    if data_cfg["fold_statistics"]:
        sample = np.sort(np.random.default_rng(0).permutation(train_rows)[:STATISTICS_SAMPLE])
        for name, array in arrays.items():
            pixels = array[sample].reshape(-1, array.shape[-1])
            if data_cfg["fold_statistics_foreground"]:
                pixels = pixels[pixels.max(axis=1) > 0]
            values = pixels.astype(np.float64) / 255
            stats[name] = (values.mean(0).tolist(), np.maximum(values.std(0), 1e-6).tolist())
    return {name: (list(stats[name][0]), list(stats[name][1])) for name in arrays}


def class_counts(data: FERData, rows: np.ndarray) -> np.ndarray:
    """Training samples per class."""
    return np.bincount(data.labels[rows], minlength=len(data.classes))


def balanced_weights(data: FERData, rows: np.ndarray) -> np.ndarray:
    """Inverse class-frequency sampling weight of each training row."""
    return 1.0 / np.maximum(class_counts(data, rows)[data.labels[rows]], 1)


def label_prior(data: FERData, rows: np.ndarray) -> np.ndarray | None:
    """``[K, K]``: row ``c`` is the mean target distribution of the training samples labelled ``c``
    (e.g. FERPlus's crowd votes), or None when the dataset has no soft labels. A class without
    training samples gets its one-hot row."""
    if data.soft_labels is None:
        return None
    k = len(data.classes)
    prior = np.eye(k, dtype=np.float64)
    labels, soft = data.labels[rows], data.soft_labels[rows]
    for c in range(k):
        members = soft[labels == c]
        if len(members):
            prior[c] = members.mean(0) / max(members.mean(0).sum(), 1e-12)
    return prior.astype(np.float32)
