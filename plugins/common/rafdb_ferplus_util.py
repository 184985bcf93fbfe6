"""Helpers shared by the ``rafdb`` and ``ferplus`` dataset plugins (usable by any image-file dataset).

- :func:`open_layout`: validated options, the data root and its layout, for a loader's first lines;
- :func:`detect_layout`: pick the on-disk layout (``layout: auto`` or an explicit choice) or raise a
  DataError that lists every layout looked for and the paths checked;
- :func:`numbered_lines`: a label file's non-blank lines with their 1-based line numbers (for errors);
- :func:`first_occurrences`: keep the first of duplicated names, with one warning on stderr;
- :func:`image_file_pixels`: a ``load_pixels`` that decodes image files once through the pixel cache;
- :func:`relative_id`: a sample id relative to the data root (POSIX separators);
- :func:`checked_options`: a loader's options merged with their defaults and checked against the choices.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence

import numpy as np

from ferbench.datafiles import fingerprint, read_image, read_text
from ferbench.errors import DataError
from ferbench.pixelcache import Pixels, cached_pixels

#: ``finder(root) -> (base folder where the layout was found or None, paths checked)``.
Finder = Callable[[Path], tuple[Optional[Path], list[Path]]]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def warn(message: str) -> None:
    """One warning line on stderr (never fatal)."""
    print(f"ferbench: warning: {message}", file=sys.stderr)


def note(message: str) -> None:
    """One informational line on stderr (what a loader dropped, by rule)."""
    print(f"ferbench: {message}", file=sys.stderr)


def detect_layout(dataset: str, root: Path, choice: str, finders: Mapping[str, Finder],
                  layouts: str) -> tuple[str, Path]:
    """``(layout name, base folder)``: ``choice`` itself, or with ``auto`` the first layout of
    ``finders`` (in order) found under ``root``; otherwise a DataError naming every path checked."""
    names = list(finders) if choice == "auto" else [choice]
    if choice != "auto" and choice not in finders:
        raise DataError(f"unknown {dataset} layout {choice!r}; choose auto or one of: {', '.join(finders)}")
    checked: list[str] = []
    for name in names:
        base, paths = finders[name](root)
        if base is not None:
            return name, base
        checked.append(f"{name} ({', '.join(str(p) for p in paths)})")
    raise DataError(f"no {dataset} layout found under {root}; looked for: {'; '.join(checked)}. "
                    f"Expected layouts: {layouts}")


def open_layout(dataset: str, data_root: Path | None, options: Mapping[str, object],
                defaults: Mapping[str, object], choices: Mapping[str, Sequence[object]],
                finders: Mapping[str, Finder], layouts: str) -> tuple[dict[str, object], Path, str, Path]:
    """``(options, data root, layout name, base folder)`` for a loader: the options checked against
    ``choices`` (``layout`` among them) and the layout found by :func:`detect_layout`."""
    opts = checked_options(dataset, options, defaults, choices)
    if data_root is None:
        raise DataError(f"{dataset} needs --data-root; expected layout: {layouts}")
    root = Path(data_root)
    layout, base = detect_layout(dataset, root, str(opts["layout"]), finders, layouts)
    return opts, root, layout, base


def first_found(candidates: Sequence[Path]) -> tuple[Path | None, list[Path]]:
    """The first existing path of ``candidates`` (or None) and the candidates, for :data:`Finder`s."""
    return next((path for path in candidates if path.exists()), None), list(candidates)


def numbered_lines(path: Path) -> list[tuple[int, str]]:
    """``(line number, stripped line)`` for the non-blank lines of a text file (CRLF, BOM and a
    missing final newline tolerated)."""
    return [(number, line.strip()) for number, line in enumerate(read_text(path).split("\n"), start=1)
            if line.strip()]


def first_occurrences(keys: Sequence[str], where: Path | str) -> np.ndarray:
    """Boolean mask keeping the first row of every key; a warning on stderr counts the others."""
    seen: set[str] = set()
    keep = np.ones(len(keys), dtype=bool)
    for row, key in enumerate(keys):
        if key in seen:
            keep[row] = False
        seen.add(key)
    dropped = int((~keep).sum())
    if dropped:
        example = next(key for key, kept in zip(keys, keep) if not kept)
        warn(f"{dropped} duplicated name(s) in {where} (e.g. {example}); kept the first of each")
    return keep


def relative_id(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` with ``/`` separators (a stable sample id)."""
    return path.relative_to(root).as_posix()


def image_folder_files(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name; hidden files (``._x.jpg``) left out."""
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES)


def image_file_pixels(namespace: str, files: Sequence[Path], ids: np.ndarray,
                      *key_extra: object) -> Callable[[int], Pixels]:
    """``load_pixels(size)`` reading ``files`` as RGB through the pixel cache (decoded once per size;
    unreadable files skipped and reported). ``key_extra``: options that change the pixels."""
    paths = list(files)
    key = fingerprint(paths, namespace, *key_extra)

    def load_pixels(size: int) -> Pixels:
        return cached_pixels(namespace, key, len(paths), size, {"rgb": (lambda i: read_image(paths[i], 3), 3)},
                             ids=ids)

    return load_pixels


def checked_options(dataset: str, options: Mapping[str, object], defaults: Mapping[str, object],
                    choices: Mapping[str, Sequence[object]]) -> dict[str, object]:
    """``defaults`` overridden by ``options``; a UsageError for a value not in ``choices`` (the CLI
    validates options already; this guards direct calls of a loader)."""
    from ferbench.errors import UsageError

    merged = {**defaults, **options}
    for key, allowed in choices.items():
        if merged[key] not in allowed:
            raise UsageError(f"invalid value {merged[key]!r} for dataset.{key}; choose one of: "
                             f"{', '.join(map(str, allowed))}")
    return merged
