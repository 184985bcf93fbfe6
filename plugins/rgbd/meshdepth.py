"""BU-3DFE meshes to depth maps: a small VRML reader and an orthographic z-buffer rasteriser (numpy).

The release has ``<name>_F3D.wrl`` face meshes but no depth maps (datasets.md §6.3). This renders
each mesh straight along its z axis, viewed from +z (VRML's default viewpoint, from which the
BU-3DFE faces are seen frontally): x to the right, y up, the mesh's x/y extent fitted into a
``size`` x ``size`` square with its aspect ratio kept and a 2% margin (the texture's camera is not
documented, so the map is not pixel-aligned with the ``_F2D`` image; the thesis notes the same, §3.1).
Each pixel keeps the largest z of the triangles covering its centre (barycentric interpolation).

Output, ``<name>_F3D_depth.png`` beside the mesh (the name [ERAI] uses, so either renderer's maps are
read the same way): background 0; the face 1..65535 (16-bit, default) or 1..255 (8-bit), linear in
z from the farthest to the nearest rendered point, so nearer = brighter. 16-bit keeps sub-millimetre
steps; ``ferbench.datafiles.read_image`` scales either to uint8 when the dataset is read.

VRML support: every ``Coordinate { point [ x y z, ... ] }`` paired in order with the following
``coordIndex [ ... ]`` of its IndexedFaceSet (``-1`` ends a polygon; polygons are fan-triangulated);
comments, commas, ``DEF`` names, texture coordinates and other nodes are ignored.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import numpy as np

from ferbench.errors import DataError

MARGIN = 0.02
_POINTS = re.compile(r"\bCoordinate\s*\{\s*point\s*\[([^\]]*)\]")
_INDICES = re.compile(r"\bcoordIndex\s*\[([^\]]*)\]")
_COMMENT = re.compile(r"#[^\n]*")
_CHUNK = 1 << 20  # candidate pixels evaluated at once (bounds memory to ~50 MB)


def _numbers(text: str, dtype: type) -> np.ndarray:
    values = text.replace(",", " ").split()
    try:
        return np.asarray(values, dtype=np.float64).astype(dtype)
    except ValueError:
        raise ValueError("non-numeric value in a VRML point or index list") from None


def _triangles(indices: np.ndarray) -> np.ndarray:
    """Polygons separated by -1 -> triangles ``[M, 3]`` (fan triangulation)."""
    if len(indices) % 4 == 0 and (indices[3::4] == -1).all() and (indices.reshape(-1, 4)[:, :3] >= 0).all():
        return indices.reshape(-1, 4)[:, :3]  # the common all-triangle case, without a Python loop
    ends = np.flatnonzero(indices == -1)
    polygons = np.split(indices, ends + 1)
    fans = [np.stack([np.full(len(p) - 2, p[0]), p[1:-1], p[2:]], axis=1)
            for p in (poly[poly >= 0] for poly in polygons) if len(p) >= 3]
    return np.concatenate(fans) if fans else np.empty((0, 3), dtype=np.int64)


def parse_vrml(text: str) -> tuple[np.ndarray, np.ndarray]:
    """Vertices ``[N, 3]`` and triangles ``[M, 3]`` of every IndexedFaceSet in a VRML text."""
    text = _COMMENT.sub("", text)
    point_lists, index_lists = _POINTS.findall(text), _INDICES.findall(text)
    if not point_lists or len(point_lists) != len(index_lists):
        raise ValueError(f"expected IndexedFaceSets with Coordinate points and coordIndex, found "
                         f"{len(point_lists)} point and {len(index_lists)} index lists")
    vertices, triangles, offset = [], [], 0
    for points, indices in zip(point_lists, index_lists):
        xyz = _numbers(points, np.float64)
        if len(xyz) % 3:
            raise ValueError("a Coordinate point list does not hold x y z triples")
        xyz = xyz.reshape(-1, 3)
        faces = _triangles(_numbers(indices, np.int64))
        if len(faces) and faces.max() >= len(xyz):
            raise ValueError(f"coordIndex refers to vertex {faces.max()} of {len(xyz)}")
        vertices.append(xyz)
        triangles.append(faces + offset)
        offset += len(xyz)
    return np.concatenate(vertices), np.concatenate(triangles)


def _to_pixels(vertices: np.ndarray, size: int) -> np.ndarray:
    """Vertex x/y in pixel units (y down), fitted into the square with a margin."""
    low, high = vertices[:, :2].min(0), vertices[:, :2].max(0)
    span = float((high - low).max())
    if span <= 0:
        raise ValueError("the mesh has no extent in x/y")
    scale = size * (1 - 2 * MARGIN) / span
    offset = (size - (high - low) * scale) / 2
    return np.stack([(vertices[:, 0] - low[0]) * scale + offset[0],
                     (high[1] - vertices[:, 1]) * scale + offset[1]], axis=1)


def _buckets(extent: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """Triangles grouped by the power-of-two side of the pixel box that covers them."""
    sides = 2 ** np.ceil(np.log2(np.maximum(extent, 1))).astype(np.int64)
    for side in np.unique(sides):
        members = np.flatnonzero(sides == side)
        step = max(1, _CHUNK // int(side * side))
        for start in range(0, len(members), step):
            yield int(side), members[start:start + step]


def _edge(p: np.ndarray, q: np.ndarray, px: np.ndarray, py: np.ndarray, area: np.ndarray) -> np.ndarray:
    """Barycentric weight, opposite edge p->q, of pixel centres ``(px, py)`` per triangle ``[T, k, k]``."""
    return ((q[:, 0] - p[:, 0])[:, None, None] * (py - p[:, 1, None, None])
            - (q[:, 1] - p[:, 1])[:, None, None] * (px - p[:, 0, None, None])) / area[:, None, None]


def _splat(zbuffer: np.ndarray, size: int, corners: np.ndarray, depth: np.ndarray, area: np.ndarray,
           first: np.ndarray, last: np.ndarray, side: int) -> None:
    """Rasterise triangles whose pixel boxes fit in ``side`` x ``side``, keeping the largest z per pixel."""
    steps = np.arange(side)
    cols = first[:, 0, None, None] + steps[None, None, :]
    rows = first[:, 1, None, None] + steps[None, :, None]
    px, py = cols + 0.5, rows + 0.5
    a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
    w0, w1 = _edge(b, c, px, py, area), _edge(c, a, px, py, area)
    w2 = 1 - w0 - w1
    inside = ((w0 >= -1e-9) & (w1 >= -1e-9) & (w2 >= -1e-9)
              & (cols <= last[:, 0, None, None]) & (rows <= last[:, 1, None, None]))
    z = w0 * depth[:, 0, None, None] + w1 * depth[:, 1, None, None] + w2 * depth[:, 2, None, None]
    np.maximum.at(zbuffer, (rows * size + cols)[inside], z[inside])


def rasterize(vertices: np.ndarray, triangles: np.ndarray, size: int) -> np.ndarray:
    """Orthographic z-buffer ``[size, size]``: the nearest (largest) z per pixel, NaN where empty."""
    corners = _to_pixels(vertices, size)[triangles]  # [M, 3 corners, (x, y)]
    depth = vertices[:, 2][triangles]
    a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    first = np.clip(np.ceil(corners.min(1) - 0.5), 0, size).astype(np.int64)  # first pixel (column, row)
    last = np.clip(np.floor(corners.max(1) - 0.5), -1, size - 1).astype(np.int64)
    keep = np.flatnonzero((np.abs(area) > 1e-12) & (last >= first).all(1))
    zbuffer = np.full(size * size, -np.inf)
    for side, members in _buckets((last[keep] - first[keep] + 1).max(1)):
        rows = keep[members]
        _splat(zbuffer, size, corners[rows], depth[rows], area[rows], first[rows], last[rows], side)
    zbuffer[np.isinf(zbuffer)] = np.nan
    return zbuffer.reshape(size, size)


def encode(zbuffer: np.ndarray, bits: int = 16) -> np.ndarray:
    """z-buffer -> integer depth map: background 0, the face 1..max linear in z (nearer = higher)."""
    top = (1 << bits) - 1
    mask = np.isfinite(zbuffer)
    if not mask.any():
        raise ValueError("nothing was rendered")
    low, high = float(zbuffer[mask].min()), float(zbuffer[mask].max())
    scaled = (zbuffer - low) / (high - low) if high > low else np.ones_like(zbuffer)
    values = np.where(mask, 1 + np.round(np.nan_to_num(scaled) * (top - 1)), 0)
    return values.astype(np.uint16 if bits == 16 else np.uint8)


def depth_path(mesh: Path) -> Path:
    """Where the depth map of ``<name>.wrl`` goes: ``<name>_depth.png`` beside it."""
    return mesh.with_name(mesh.stem + "_depth.png")


def convert(mesh: Path, size: int = 512, bits: int = 16) -> Path:
    """Render ``mesh`` (a ``.wrl`` file) and write its depth PNG; returns the PNG's path."""
    from PIL import Image

    vertices, triangles = parse_vrml(mesh.read_text(encoding="latin-1"))
    image = encode(rasterize(vertices, triangles, size), bits)
    target = depth_path(mesh)
    partial = target.with_name(target.name + ".partial.png")
    Image.fromarray(image).save(partial)
    partial.replace(target)
    return target


def meshes(data_root: Path) -> list[Path]:
    """Every BU-3DFE face mesh (``*_F3D.wrl``, any case) under ``data_root``."""
    return sorted(p for p in data_root.rglob("*") if p.is_file() and p.name.lower().endswith("_f3d.wrl"))


def convert_tree(data_root: str | Path, size: int = 512, bits: int = 16, overwrite: bool = False) -> Iterator[str]:
    """Render every mesh under ``data_root`` (``ferbench bu3dfe-depth``); yields report lines.

    Existing depth maps are kept unless ``overwrite``. Meshes that cannot be parsed or rendered are
    skipped and listed at the end in a DataError, after every other mesh is converted.
    """
    from tqdm.auto import tqdm

    root = Path(data_root)
    if not root.is_dir():
        raise DataError(f"data root {root} is not a directory; expected a BU-3DFE folder holding "
                        f"<subject>/<name>_F3D.wrl meshes")
    found = meshes(root)
    if not found:
        raise DataError(f"no BU-3DFE meshes (*_F3D.wrl) under {root}; expected layout: "
                        f"<root>/F0001/F0001_AN01WH_F3D.wrl")
    todo = [mesh for mesh in found if overwrite or not depth_path(mesh).exists()]
    failed: list[str] = []
    for mesh in tqdm(todo, desc="rendering depth maps", unit="mesh", disable=None, leave=False):
        try:
            convert(mesh, size, bits)
        except (OSError, ValueError) as exc:
            failed.append(f"{mesh} ({exc})")
    yield (f"{len(todo) - len(failed)} depth map(s) written ({size}x{size}, {bits}-bit), "
           f"{len(found) - len(todo)} already present, {len(failed)} failed")
    if failed:
        raise DataError(f"{len(failed)} mesh(es) could not be rendered: " + "; ".join(failed[:5])
                        + (" ..." if len(failed) > 5 else ""))
