"""The contract between dataset plugins and the engine."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Union

import numpy as np

from .errors import DataError
from .pixelcache import Pixels

#: ``load(image_size) -> Pixels`` (or simply ``{modality: uint8 [N, H, W, C]}``), rows in table order.
PixelLoader = Callable[[int], Union[Pixels, dict[str, np.ndarray]]]


@dataclass
class FERData:
    """A labelled dataset as the engine sees it: a sample table plus a pixel loader.

    ``ids`` are stable sample identifiers (relative file names for real datasets); ``split`` holds the
    official partition (``train``/``val``/``test``) where the dataset has one; ``subjects`` holds
    identity ids where known, for subject-independent protocols; ``soft_labels`` optional target
    distributions for losses that accept them (``labels`` stay the hard labels used for scoring);
    ``files`` the image path of each
    sample where there is one (``ferbench data check`` verifies them). Rows in ``excluded`` (images
    found unreadable) are left out of every split.
    """

    classes: tuple[str, ...]
    ids: np.ndarray
    labels: np.ndarray
    load_pixels: PixelLoader
    modalities: tuple[str, ...] = ("rgb",)
    subjects: np.ndarray | None = None
    split: np.ndarray | None = None
    files: np.ndarray | None = None
    excluded: np.ndarray | None = None
    soft_labels: np.ndarray | None = None  # [N, classes] target distributions (e.g. FERPlus votes)
    fold: np.ndarray | None = None  # published test-fold number of each row, for ``predefined`` protocols

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
        if self.excluded is None:
            self.excluded = np.zeros(n, dtype=bool)
        if self.soft_labels is not None:
            self.soft_labels = np.asarray(self.soft_labels, dtype=np.float32)
            if self.soft_labels.shape != (n, len(self.classes)):
                raise DataError(f"soft labels must have shape ({n}, {len(self.classes)})")
        for name in ("subjects", "split", "files", "fold"):
            column = getattr(self, name)
            if column is not None and len(column) != n:
                raise DataError(f"dataset column {name!r} has {len(column)} rows, expected {n}")

    def __len__(self) -> int:
        return len(self.ids)

    def pixels(self, size: int) -> Pixels:
        """Pixels at ``size``; unreadable rows are marked ``excluded`` so no split contains them."""
        loaded = self.load_pixels(size)
        pixels = loaded if isinstance(loaded, Pixels) else Pixels(dict(loaded))
        self.excluded[pixels.unreadable] = True
        return pixels

    def index_of(self, ids: list[str] | np.ndarray) -> np.ndarray:
        """Row indices of the given sample ids."""
        lookup = {sample_id: row for row, sample_id in enumerate(self.ids)}
        return np.fromiter((lookup[i] for i in ids), dtype=np.int64, count=len(ids))
