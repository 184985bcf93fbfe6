"""The contract between dataset plugins and the engine."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Union

import numpy as np

from .errors import PluginError
from .pixelcache import Pixels

#: ``load(image_size) -> Pixels`` (or simply ``{modality: uint8 [N, H, W, C]}``), rows in table order.
PixelLoader = Callable[[int], Union[Pixels, dict[str, np.ndarray]]]


#: The official parts a ``FERData.split`` column may name.
SPLITS = ("train", "val", "test")
#: Channels a modality's pixel arrays may have (other modalities: any).
CHANNELS: dict[str, tuple[int, ...]] = {"rgb": (3,), "depth": (1, 3)}


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
        self.classes = tuple(self.classes)
        if not self.classes or len(set(self.classes)) != len(self.classes) \
                or not all(isinstance(c, str) for c in self.classes):
            raise PluginError(f"classes must be distinct names (ferbench.emotions has the canonical ones), "
                              f"got {self.classes!r}")
        self.ids = np.asarray(self.ids).astype(str)
        self.labels = _class_indices(self.labels)
        n = len(self.ids)
        if len(self.labels) != n:
            raise PluginError(f"the table has {n} sample ids but {len(self.labels)} labels; give one label per id")
        _check_unique(self.ids)
        _check_label_range(self.labels, self.ids, self.classes)
        if self.excluded is None:
            self.excluded = np.zeros(n, dtype=bool)
        if self.soft_labels is not None:
            self.soft_labels = np.asarray(self.soft_labels, dtype=np.float32)
            if self.soft_labels.shape != (n, len(self.classes)):
                raise PluginError(f"soft_labels have shape {self.soft_labels.shape}, expected ({n}, {len(self.classes)}): "
                                  "one target distribution over the classes per row")
        for name in ("subjects", "split", "files", "fold", "excluded"):
            column = getattr(self, name)
            if column is not None and len(column) != n:
                raise PluginError(f"column {name!r} has {len(column)} rows but the table has {n}; give one value per row")
        if self.split is not None:
            unknown = sorted(set(np.asarray(self.split).astype(str).tolist()) - set(SPLITS))
            if unknown:
                raise PluginError(f"split values {unknown} are not official parts; use {', '.join(SPLITS)}")

    def __len__(self) -> int:
        return len(self.ids)

    def pixels(self, size: int) -> Pixels:
        """Pixels at ``size``, checked against the contract; unreadable rows are marked ``excluded`` so
        no split contains them."""
        pixels = check_pixels(self.load_pixels(size), len(self), self.modalities, size)
        self.excluded[pixels.unreadable] = True
        return pixels

    def index_of(self, ids: list[str] | np.ndarray) -> np.ndarray:
        """Row indices of the given sample ids."""
        lookup = {sample_id: row for row, sample_id in enumerate(self.ids)}
        return np.fromiter((lookup[i] for i in ids), dtype=np.int64, count=len(ids))


def _examples(values: list[str]) -> str:
    return ", ".join(values[:3]) + (", ..." if len(values) > 3 else "")


def _class_indices(labels: Any) -> np.ndarray:
    """``labels`` as int64 class indices; floats only when they are whole numbers."""
    array = np.asarray(labels)
    if array.ndim != 1:
        raise PluginError(f"labels have shape {array.shape}; give one integer class index per row")
    if array.dtype.kind in "iu" or not len(array):
        return array.astype(np.int64)
    if array.dtype.kind == "f":
        whole = np.isfinite(array) & (array == np.round(array))
        if whole.all():
            return array.astype(np.int64)
        raise PluginError(f"labels must be integer class indices; got {_examples([repr(float(v)) for v in array[~whole]])}")
    hint = "; map names with classes.index(name)" if array.dtype.kind in "US" else ""
    raise PluginError(f"labels must be integer class indices, got {array.dtype} values such as {array[0]!r}{hint}")


def _check_unique(ids: np.ndarray) -> None:
    values, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        repeated = [repr(str(v)) for v in values[counts > 1]]
        raise PluginError(f"{len(repeated)} sample id(s) occur more than once ({_examples(repeated)}); ids must be unique")


def _check_label_range(labels: np.ndarray, ids: np.ndarray, classes: tuple[str, ...]) -> None:
    bad = np.flatnonzero((labels < 0) | (labels >= len(classes)))
    if len(bad):
        shown = [f"{str(ids[i])!r}: {labels[i]}" for i in bad]
        raise PluginError(f"{len(bad)} label(s) outside 0..{len(classes) - 1} for the {len(classes)} classes "
                          f"({', '.join(classes)}): {_examples(shown)}; a label indexes FERData.classes")


def check_pixels(loaded: Any, rows: int, modalities: tuple[str, ...], size: int) -> Pixels:
    """What ``load_pixels(size)`` returned, checked (dtypes and shapes only, so it is cheap): uint8
    ``[rows, size, size, C]`` per modality, 3 channels for RGB, 1 or 3 for depth."""
    if isinstance(loaded, Pixels):
        pixels = loaded
    elif isinstance(loaded, Mapping):
        pixels = Pixels(dict(loaded))
    else:
        raise PluginError(f"load_pixels returned {type(loaded).__name__}; return {{modality: uint8 array "
                          "[N, H, W, C]}} or ferbench.pixelcache.Pixels")
    missing = [m for m in modalities if m not in pixels.arrays]
    if missing:
        raise PluginError(f"load_pixels returned {sorted(pixels.arrays)} but the table declares modalities "
                          f"{list(modalities)}; return an array for each")
    for name, array in pixels.arrays.items():
        _check_array(name, array, rows, size)
    unreadable = np.asarray(pixels.unreadable, dtype=np.int64)
    if len(unreadable) and (unreadable.min() < 0 or unreadable.max() >= rows):
        raise PluginError(f"Pixels.unreadable holds row indices outside 0..{rows - 1}")
    return Pixels(pixels.arrays, unreadable)


def _check_array(name: str, array: Any, rows: int, size: int) -> None:
    dtype, shape = getattr(array, "dtype", None), getattr(array, "shape", None)
    if dtype is None or shape is None:
        raise PluginError(f"{name} pixels are a {type(array).__name__}; return a numpy uint8 array [N, H, W, C]")
    if dtype != np.uint8:
        fix = " (scale [0, 1] floats: (x * 255).round().astype(np.uint8))" if np.dtype(dtype).kind == "f" else ""
        raise PluginError(f"{name} pixels are {dtype}; return uint8 values 0..255{fix}")
    if len(shape) != 4:
        raise PluginError(f"{name} pixels have shape {tuple(shape)}; return [N, H, W, C] (a grayscale image "
                          "needs a channel axis: x[..., None])")
    if tuple(shape[1:3]) != (size, size):
        raise PluginError(f"{name} pixels are {shape[1]}x{shape[2]} but {size}x{size} (data.image_size) was asked "
                          "for; resize to the requested size (ferbench.datafiles.resize, or read through "
                          "ferbench.pixelcache.cached_pixels)")
    allowed = CHANNELS.get(name)
    if allowed and shape[3] not in allowed:
        raise PluginError(f"{name} pixels have {shape[3]} channel(s); {name} needs "
                          f"{' or '.join(map(str, allowed))} (ferbench.datafiles.read_image(path, channels=...))")
    if shape[0] != rows:
        raise PluginError(f"{name} pixels have {shape[0]} rows but the table has {rows}; return one image per row, "
                          "in table order (unreadable ones listed in Pixels.unreadable)")
