"""The contract between dataset plugins and the engine."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .errors import DataError

#: ``load(image_size) -> {modality: uint8 array [N, H, W, C]}``, rows in the order of ``FERData.ids``.
PixelLoader = Callable[[int], dict[str, np.ndarray]]


@dataclass
class FERData:
    """A labelled dataset as the engine sees it: a sample table plus a pixel loader.

    ``ids`` are stable sample identifiers (relative file names for real datasets); ``split`` holds the
    official partition (``train``/``val``/``test``) where the dataset has one; ``subjects`` holds
    identity ids where known, for subject-independent protocols.
    """

    classes: tuple[str, ...]
    ids: np.ndarray
    labels: np.ndarray
    load_pixels: PixelLoader
    modalities: tuple[str, ...] = ("rgb",)
    subjects: np.ndarray | None = None
    split: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.ids = np.asarray(self.ids).astype(str)
        self.labels = np.asarray(self.labels, dtype=np.int64)
        n = len(self.ids)
        if len(self.labels) != n:
            raise DataError(f"dataset has {n} sample ids but {len(self.labels)} labels")
        if len(np.unique(self.ids)) != n:
            raise DataError("dataset sample ids are not unique")
        if n and (self.labels.min() < 0 or self.labels.max() >= len(self.classes)):
            raise DataError(f"labels must lie in [0, {len(self.classes)}) for classes {self.classes}")
        for name in ("subjects", "split"):
            column = getattr(self, name)
            if column is not None and len(column) != n:
                raise DataError(f"dataset column {name!r} has {len(column)} rows, expected {n}")

    def __len__(self) -> int:
        return len(self.ids)

    def index_of(self, ids: list[str] | np.ndarray) -> np.ndarray:
        """Row indices of the given sample ids."""
        lookup = {sample_id: row for row, sample_id in enumerate(self.ids)}
        return np.fromiter((lookup[i] for i in ids), dtype=np.int64, count=len(ids))
