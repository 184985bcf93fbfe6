"""Bosphorus ``.bnt`` range scans: the binary reader and the depth image rendered from them.

File format (datasets.md §7.1, after the public ``read_bntfile`` readers), little-endian::

    uint16 nrows, uint16 ncols, float64 zmin, uint16 name_length, name_length bytes (image file name),
    uint32 data_length (= 5 * nrows * ncols), then data_length float64 values: the planes x, y, z
    and two texture coordinates, each nrows * ncols values in row-major order, rows bottom-up.

A grid point whose z equals ``zmin`` is background. The scan already is a regular grid over the
face, so the depth image is its z plane (no re-projection): rows flipped to top-down, cropped to the
face's bounding box, padded with background to a square. Values: background 0, the face 1..255 with
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


def render(scan: RangeScan) -> np.ndarray:
    """The scan's depth image, uint8 ``[S, S]`` (see the module docstring)."""
    mask = scan.foreground
    if not mask.any():
        raise ValueError("the scan has no foreground point")
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    window = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    z, mask = scan.z[window], mask[window]
    near = float(z[mask].max())
    far = max(float(z[mask].min()), near - FAR_MM)
    scaled = np.clip((z - far) / (near - far), 0, 1) if near > far else np.ones_like(z)
    image = np.where(mask, 1 + np.round(scaled * 254), 0).astype(np.uint8)
    height, width = image.shape
    side = max(height, width)
    top, left = (side - height) // 2, (side - width) // 2
    square = np.zeros((side, side), dtype=np.uint8)
    square[top:top + height, left:left + width] = image
    return square


def depth_image(path: Path) -> np.ndarray:
    """``.bnt`` file -> uint8 ``[S, S, 1]`` depth image (the Bosphorus depth reader)."""
    return render(read_bnt(path))[..., None]
