"""Loads ``synthfer`` as :class:`~ferbench.data.FERData`, caching rendered pixels per resolution."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ferbench.data import FERData
from ferbench.diskio import ensure_dir, write_atomically
from ferbench.emotions import BASIC7
from ferbench.errors import UsageError
from ferbench.locks import FileLock
from ferbench.store import home

from . import render

#: Bump when the renderer changes what it draws, to invalidate caches.
RENDER_VERSION = 2
#: Resolution used to read the sample table (labels, subjects) without rendering full-size images.
TABLE_SIZE = 16


def cache_dir() -> Path:
    """Where rendered arrays are kept: ``<ferbench home>/cache/synthfer``."""
    return home() / "cache" / "synthfer"


def _render_args(options: Mapping[str, Any]) -> dict[str, Any]:
    try:
        return {"n": int(options["samples"]), "seed": int(options["seed"]), "num_subjects": int(options["subjects"]),
                "label_noise": float(options["label_noise"]), "difficulty": float(options["difficulty"])}
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"bad synthfer option: {exc}") from None


def _rendered(args: dict[str, Any], size: int) -> dict[str, np.ndarray]:
    """Rendered arrays for ``args`` at ``size``, from the cache when present (memory-mapped). Concurrent
    first runs take turns on a lock per entry: one renders, the others read what it wrote."""
    key = hashlib.sha256(json.dumps({**args, "size": size, "v": RENDER_VERSION}, sort_keys=True).encode())
    folder = cache_dir() / key.hexdigest()[:16]
    names = ("rgb", "depth", "label", "clean_label", "subject")
    if not _complete(folder, names):
        with FileLock(folder.with_name(folder.name + ".lock"), "synthfer cache"):
            if not _complete(folder, names):  # another process may have rendered it while this one waited
                _render_into(folder, names, args, size)
    return {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in names}


def _complete(folder: Path, names: tuple[str, ...]) -> bool:
    return all((folder / f"{name}.npy").exists() for name in names)


def _render_into(folder: Path, names: tuple[str, ...], args: dict[str, Any], size: int) -> None:
    try:
        faces = render.render(size=size, **args)
    except ValueError as exc:
        raise UsageError(f"bad synthfer option: {exc}") from None
    ensure_dir(folder, "synthfer cache")
    for name in names:
        array = getattr(faces, name)
        write_atomically(folder / f"{name}.npy", lambda file, array=array: np.save(file, array), "synthfer cache file")


def load(data_root: Path | None, options: Mapping[str, Any]) -> FERData:
    """The synthetic dataset; ``options`` come from the run config's ``dataset`` section."""
    args = _render_args(options)
    table = _rendered(args, TABLE_SIZE)
    subjects = np.asarray(table["subject"])
    split = np.where(subjects % 5 == 4, "test", "train")

    def load_pixels(size: int) -> dict[str, np.ndarray]:
        arrays = _rendered(args, size)
        if not np.array_equal(arrays["label"], table["label"]):
            raise RuntimeError("synthfer labels depend on the rendering size; the renderer is broken")
        return {"rgb": arrays["rgb"], "depth": arrays["depth"][..., None]}

    return FERData(classes=BASIC7, ids=[f"synthfer-{i:05d}" for i in range(args["n"])],
                   labels=np.asarray(table["label"]), load_pixels=load_pixels, modalities=("rgb", "depth"),
                   subjects=subjects, split=split)
