"""What the RGB-D loaders share beyond :mod:`ferbench.datafiles`: the sample :class:`Row`, the data
root's flat/nested layout (:func:`resolve_root`), class sets and labels (:func:`class_set`,
:func:`label_of`), RGB and depth reading (:func:`read_rgb`, :func:`read_depth`, :func:`invert_foreground`)
and FERData assembly (:func:`to_ferdata`).

Every loader turns its folder tree into a list of :class:`Row` (one RGB image, its depth source, a
canonical label and a subject id); :func:`to_ferdata` turns rows into :class:`~ferbench.data.FERData`
whose pixels come from the pixel cache with two readers, ``rgb`` (3 channels) and ``depth`` (1 channel).
The merged dataset concatenates the rows of the three loaders, so it needs no reader of its own.

Depth convention of this package: 0 = background (no measurement); higher = nearer to the camera.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from ferbench.data import FERData
from ferbench.datafiles import fingerprint, read_image
from ferbench.emotions import BASIC7
from ferbench.errors import DataError

if TYPE_CHECKING:
    from ferbench.pixelcache import Pixels

#: Bump when a reader changes what it produces, to invalidate cached pixels.
READER_VERSION = 2
#: How a row's depth file is turned into a uint8 image (see :func:`read_depth`).
DEPTH_MODES = ("png", "png-invert", "bnt")
#: How a row's RGB file is read (see :func:`read_rgb`): whole, or cropped to its ``.bnt`` depth grid.
RGB_MODES = ("image", "bnt-crop")


@dataclass(frozen=True)
class Row:
    """One RGB-D sample: ``id`` is the RGB file relative to the data root (stable and unique)."""

    id: str
    label: int
    subject: str
    rgb: Path
    depth: Path
    depth_mode: str  # one of DEPTH_MODES
    rgb_mode: str = "image"  # one of RGB_MODES


def label_of(name: str) -> int:
    """Index of a canonical class name in BASIC7."""
    return BASIC7.index(name)


def resolve_root(data_root: Path, layout: str, looks_right: Callable[[Path], bool], dataset: str,
                 expected: str) -> Path:
    """The folder that holds the dataset's tree.

    ``flat``: the data root itself; ``nested``: the one sub-folder of the data root that holds it (as
    in re-packaged copies such as ``BU3DFE/Subjects/``); ``auto``: flat, else nested.
    """
    checked = [data_root]
    if layout in ("auto", "flat") and looks_right(data_root):
        return data_root
    if layout in ("auto", "nested"):
        candidates = [entry for entry in sorted(data_root.iterdir()) if entry.is_dir()] if data_root.is_dir() else []
        checked += candidates
        found = [entry for entry in candidates if looks_right(entry)]
        if len(found) > 1:
            raise DataError(f"several folders under {data_root} look like {dataset}: "
                            f"{', '.join(f.name for f in found)}; point --data-root at one of them")
        if found:
            return found[0]
    looked = {"auto": "flat, then nested", "flat": "flat", "nested": "nested"}[layout]
    shown = ", ".join(str(p) for p in checked[:6]) + (" ..." if len(checked) > 6 else "")
    raise DataError(f"no {dataset} data found (layout {looked}; checked {shown}); expected layout: {expected}")


def class_set(num_classes: int, dropped: str) -> tuple[str, ...]:
    """BASIC7 for 7 classes; BASIC7 without ``dropped`` (order kept) for the 6-class variant."""
    return BASIC7 if num_classes == 7 else tuple(name for name in BASIC7 if name != dropped)


def invert_foreground(image: np.ndarray) -> np.ndarray:
    """Flip the values of non-zero pixels within their own range (distance map -> nearness map);
    background 0 stays 0. Assumes the stored map marks background as 0 (the SR300 maps do)."""
    mask = image > 0
    if not mask.any():
        return image
    low, high = int(image[mask].min()), int(image[mask].max())
    out = image.copy()
    out[mask] = (low + high - image[mask].astype(np.int32)).astype(np.uint8)
    return out


def read_depth(path: Path, mode: str) -> np.ndarray:
    """A depth source as uint8 ``[H, W, 1]``: a PNG (8/16-bit, scaled by ``read_image``), the same
    with its foreground inverted, or a Bosphorus ``.bnt`` range scan rendered by :mod:`.bnt`."""
    if mode == "bnt":
        from .bnt import depth_image

        return depth_image(path)
    image = read_image(path, 1)
    return invert_foreground(image) if mode == "png-invert" else image


def read_rgb(row: Row) -> np.ndarray:
    """A row's RGB image as uint8 ``[H, W, 3]``: the whole file, or (``bnt-crop``) the part under its
    ``.bnt`` depth image, pixel-aligned with :func:`read_depth` (:func:`.bnt.crop_to_depth`)."""
    image = read_image(row.rgb, 3)
    if row.rgb_mode == "bnt-crop":
        from .bnt import crop_to_depth, read_bnt

        return crop_to_depth(image, read_bnt(row.depth))
    return image


def to_ferdata(rows: list[Row], namespace: str, data_root: Path, classes: tuple[str, ...] = BASIC7) -> FERData:
    """FERData over the ``rows`` whose class is in ``classes`` (row labels index BASIC7); pixels decoded
    once into the cache (``rgb`` 3 channels, ``depth`` 1)."""
    rows = [row for row in rows if BASIC7[row.label] in classes]
    if not rows:
        raise DataError(f"no {namespace} samples left under {data_root} with the chosen options")
    ids = np.asarray([row.id for row in rows])

    def load_pixels(size: int) -> Pixels:
        from ferbench.pixelcache import cached_pixels

        paths = [p for row in rows for p in (row.rgb, row.depth)]
        modes = [(row.rgb_mode, row.depth_mode) for row in rows]
        key = fingerprint(paths, namespace, modes, READER_VERSION)
        readers = {"rgb": (lambda i: read_rgb(rows[i]), 3),
                   "depth": (lambda i: read_depth(rows[i].depth, rows[i].depth_mode), 1)}
        return cached_pixels(namespace, key, len(rows), size, readers, ids=ids)

    return FERData(classes=classes, ids=ids, labels=np.asarray([classes.index(BASIC7[row.label]) for row in rows]),
                   load_pixels=load_pixels, modalities=("rgb", "depth"),
                   subjects=np.asarray([row.subject for row in rows]),
                   files=np.asarray([str(row.rgb) for row in rows]))
