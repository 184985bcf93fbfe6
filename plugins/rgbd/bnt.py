"""Bosphorus ``.bnt`` range scans: the binary reader and the depth image rendered from them.

File format (datasets.md §7.1, after the public ``read_bntfile`` readers), little-endian::

    uint16 nrows, uint16 ncols, float64 zmin, uint16 name_length, name_length bytes (image file name),
    uint32 data_length (= 5 * nrows * ncols), then data_length float64 values: the planes x, y, z
    and two texture coordinates, each nrows * ncols values in row-major order, rows bottom-up.

A grid point whose z equals ``zmin`` is background. The scan already is a regular grid over the
face, so the depth image is its z plane (no re-projection): rows flipped to top-down, cropped to the
face's bounding box, padded with background to a square (:func:`square_window`).

The texture coordinates (u, v) in [0, 1] place each grid point in the scan's 1600x1200 RGB image: pixel
x = u * width, y = v * height, y counted from the top (as the public MATLAB readers index the image).
:func:`crop_to_depth` crops the RGB image to the depth image's square window through the affine map
fitted to those coordinates (the grid is a sub-sampling of the camera image, so the map is affine), so
the two modalities are pixel-aligned: thesis §3.10 crops "the RGB images accordingly to the depth maps". Values: background 0, the face 1..255 with
nearer (larger z) brighter, scaled per scan from its nearest point to ``FAR_MM`` behind it (points
further back are clipped, as the thesis code does with its 200 mm window below the largest z,
Bosphorus_Initializer.py, which also implies that the face points towards +z).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Depth window behind the nearest point, in the scan's units (millimetres).
FAR_MM = 200.0
#: Largest side of an RGB crop (:func:`crop_to_depth`); faces in the 1600x1200 images are well below it.
MAX_CROP = 1024


@dataclass(frozen=True)
class RangeScan:
    """A decoded ``.bnt`` file; planes are ``[nrows, ncols]`` float64 arrays, top row first."""

    zmin: float
    image_name: str
    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    u: np.ndarray
    v: np.ndarray

    @property
    def foreground(self) -> np.ndarray:
        """Grid points holding a measurement."""
        return (self.z != self.zmin) & np.isfinite(self.z)


def read_bnt(path: Path) -> RangeScan:
    """Decode a ``.bnt`` file; ValueError when it is truncated or inconsistent."""
    raw = Path(path).read_bytes()
    try:
        nrows, ncols, zmin, name_length = struct.unpack_from("<HHdH", raw, 0)
        offset = 14 + name_length
        image_name = raw[14:offset].decode("ascii", errors="replace")
        (data_length,) = struct.unpack_from("<I", raw, offset)
    except struct.error:
        raise ValueError(f"{path}: truncated .bnt header") from None
    count = nrows * ncols
    if count == 0 or data_length != 5 * count:
        raise ValueError(f"{path}: .bnt header says {nrows}x{ncols} grid but {data_length} values")
    if len(raw) < offset + 4 + 8 * data_length:
        raise ValueError(f"{path}: .bnt data is truncated")
    planes = np.frombuffer(raw, dtype="<f8", count=data_length, offset=offset + 4).reshape(5, nrows, ncols)
    x, y, z, u, v = (plane[::-1] for plane in planes)
    return RangeScan(zmin=zmin, image_name=image_name, x=x, y=y, z=z, u=u, v=v)


@dataclass(frozen=True)
class SquareWindow:
    """Where the depth image lies on the scan's grid: its pixel (i, j) is grid point
    (``row0 + i``, ``col0 + j``); ``side`` pixels square (the face's bounding box, padded and centred)."""

    row0: int
    col0: int
    side: int


def square_window(mask: np.ndarray) -> SquareWindow:
    """The square window around the foreground of a ``[nrows, ncols]`` mask."""
    if not mask.any():
        raise ValueError("the scan has no foreground point")
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    height, width = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
    side = int(max(height, width))
    return SquareWindow(int(rows[0] - (side - height) // 2), int(cols[0] - (side - width) // 2), side)


def render(scan: RangeScan) -> np.ndarray:
    """The scan's depth image, uint8 ``[S, S]`` (see the module docstring)."""
    mask = scan.foreground
    window = square_window(mask)
    near = float(scan.z[mask].max())
    far = max(float(scan.z[mask].min()), near - FAR_MM)
    scaled = np.clip((scan.z - far) / (near - far), 0, 1) if near > far else np.ones_like(scan.z)
    image = np.where(mask, 1 + np.round(scaled * 254), 0).astype(np.uint8)
    square = np.zeros((window.side, window.side), dtype=np.uint8)
    rows = np.arange(window.row0, window.row0 + window.side)
    cols = np.arange(window.col0, window.col0 + window.side)
    inside_rows, inside_cols = (rows >= 0) & (rows < image.shape[0]), (cols >= 0) & (cols < image.shape[1])
    square[np.ix_(inside_rows, inside_cols)] = image[np.ix_(rows[inside_rows], cols[inside_cols])]
    return square


def grid_to_image(scan: RangeScan, width: int, height: int) -> np.ndarray:
    """The affine map ``[2, 3]`` from grid (row, col, 1) to image pixel (y, x), fitted by least squares to
    the foreground points' texture coordinates (x = u * width, y = v * height)."""
    mask = scan.foreground & np.isfinite(scan.u) & np.isfinite(scan.v)
    rows, cols = np.nonzero(mask)
    design = np.stack([rows, cols, np.ones_like(rows)], 1).astype(np.float64)
    if len(rows) < 3 or np.linalg.matrix_rank(design) < 3:
        raise ValueError("too few foreground points with texture coordinates to place the scan in its image")
    targets = np.stack([scan.v[mask] * height, scan.u[mask] * width], 1)
    coefficients, *_ = np.linalg.lstsq(design, targets, rcond=None)
    return coefficients.T


def crop_to_depth(rgb: np.ndarray, scan: RangeScan, max_side: int = MAX_CROP) -> np.ndarray:
    """The part of the scan's RGB image ``[H, W, 3]`` under its depth image (:func:`render`), uint8
    ``[N, N, 3]``: pixel for pixel on the same square window (resized), at about the image's own
    resolution (``N`` = window side x image pixels per grid step, at most ``max_side``); outside the
    image is black. A grid axis running against the image's axis yields a mirrored crop, so the two
    stay aligned whatever the scan's orientation."""
    from PIL import Image

    affine = grid_to_image(scan, rgb.shape[1], rgb.shape[0])
    window = square_window(scan.foreground)
    step = float(np.sqrt(abs(np.linalg.det(affine[:, :2]))))
    size = int(min(max(round(window.side * step), window.side), max_side))
    scale = window.side / size  # grid steps per output pixel
    # output (X, Y) -> grid (row0 - 1/2 + Y scale, col0 - 1/2 + X scale) -> image (x, y)
    origin = np.array([window.row0 - 0.5, window.col0 - 0.5, 1.0])
    (ay_row, ay_col, _), (ax_row, ax_col, _) = affine
    data = (ax_col * scale, ax_row * scale, float(affine[1] @ origin),
            ay_col * scale, ay_row * scale, float(affine[0] @ origin))
    image = Image.fromarray(rgb).transform((size, size), Image.Transform.AFFINE, data,
                                           resample=Image.Resampling.BICUBIC)
    return np.asarray(image, dtype=np.uint8)


def depth_image(path: Path) -> np.ndarray:
    """``.bnt`` file -> uint8 ``[S, S, 1]`` depth image (the Bosphorus depth reader)."""
    return render(read_bnt(path))[..., None]
