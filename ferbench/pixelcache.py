"""Decode every image once: a cache of uint8 arrays per (data content, resolution, reader).

The first run at a resolution decodes and resizes all images in parallel threads and writes one
``.npy`` file per modality; later epochs and later runs memory-map it, so nothing is decoded again.
Unreadable images are skipped (zero-filled), counted and reported, never fatal. Concurrent first runs
take turns on a lock per cache entry: one decodes, the others then read what it wrote.
"""
from __future__ import annotations

import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .datafiles import resize
from .diskio import ensure_dir, replacing, reserve_space, write_bytes
from .locks import FileLock
from .store import home

#: ``read(index) -> uint8 [H, W, C]`` for sample ``index``; raises (OSError, ValueError...) when unreadable.
Reader = Callable[[int], np.ndarray]
CACHE_VERSION = 1


@dataclass
class Pixels:
    """What a dataset's ``load_pixels(size)`` returns: arrays per modality (rows in table order) and
    the rows whose image could not be read (they are left out of every split)."""

    arrays: dict[str, np.ndarray]
    unreadable: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))


def cache_root() -> Path:
    """``<ferbench home>/cache/pixels``."""
    return home() / "cache" / "pixels"


def _decode_all(count: int, size: int, channels: int, read: Reader, target: Path,
                label: str) -> list[int]:
    from tqdm.auto import tqdm

    array = np.lib.format.open_memmap(target, mode="w+", dtype=np.uint8, shape=(count, size, size, channels))
    reserve_space(target)  # a full disk is then an OSError now, not a SIGBUS when a page is written
    failed: list[int] = []

    def work(index: int) -> None:
        try:
            image = read(index)
            if image.ndim == 2:
                image = image[..., None]
            if image.shape[2] != channels:
                image = np.repeat(image[..., :1], channels, axis=2) if channels == 3 else image[..., :1]
            array[index] = resize(image, size)
        except Exception:  # noqa: BLE001 - a corrupt file must not stop the run
            failed.append(index)

    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2) * 2)) as pool:
        for _ in tqdm(pool.map(work, range(count)), total=count, desc=f"decoding {label}", unit="img",
                      disable=None, leave=False):
            pass
    array.flush()
    return sorted(failed)


def cached_pixels(namespace: str, key: str, count: int, size: int, readers: dict[str, tuple[Reader, int]],
                  ids: np.ndarray | None = None) -> Pixels:
    """Arrays ``{modality: uint8 [count, size, size, channels]}`` for ``readers`` ``{modality: (read,
    channels)}``, decoded once and memory-mapped afterwards.

    ``key`` must change whenever the data changes (see :func:`ferbench.datafiles.fingerprint`); the
    resolution, reader channels and cache version are added here. Unreadable images are reported once,
    on stderr, with up to five of their ``ids``.
    """
    folder = cache_root() / namespace / f"{key}-{size}px-v{CACHE_VERSION}"
    meta_path = folder / "meta.json"
    if not meta_path.exists():
        with FileLock(folder.with_name(folder.name + ".lock"), "pixel cache"):
            if not meta_path.exists():  # another process may have decoded it while this one waited
                _decode_into(folder, namespace, count, size, readers, ids)
    meta = json.loads(meta_path.read_text())
    arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in readers}
    return Pixels(arrays, np.asarray(meta["unreadable"], dtype=np.int64))


def _decode_into(folder: Path, namespace: str, count: int, size: int, readers: dict[str, tuple[Reader, int]],
                 ids: np.ndarray | None) -> None:
    """Decode every modality into ``folder``; ``meta.json``, written last, marks the entry complete."""
    ensure_dir(folder, "pixel cache")
    unreadable: set[int] = set()
    for name, (read, channels) in readers.items():
        with replacing(folder / f"{name}.npy", "pixel cache file") as tmp:
            unreadable.update(_decode_all(count, size, channels, read, tmp, f"{namespace} {name}"))
    failed = sorted(unreadable)
    if failed:
        shown = ", ".join(str(ids[i]) if ids is not None else str(i) for i in failed[:5])
        print(f"ferbench: warning: {len(failed)} unreadable image(s) in {namespace} skipped "
              f"(e.g. {shown})", file=sys.stderr)
    meta = json.dumps({"count": count, "size": size, "unreadable": failed})
    write_bytes(folder / "meta.json", meta.encode(), "pixel cache file")
