"""Reading the files of real datasets as users have them: tolerant of their quirks, clear when wrong.

Label files come with CRLF line ends, a byte-order mark, no newline at the end, blank lines; images
come as grayscale or palette JPEG/PNG, 16-bit PNG depth maps, and now and then as unreadable files.
Dataset plugins use these helpers so that every plugin handles the quirks the same way:

- files: :func:`require`, :func:`read_text`, :func:`read_lines`, :func:`read_csv`, :func:`read_yaml`,
  :func:`fingerprint`;
- folders: :func:`image_files`, :func:`subfolders`, :func:`child_folder`, :func:`relative_id`;
- images: :func:`read_image`, :func:`resize`;
- loaders' options and messages: :func:`merge_options`, :func:`warn`, :func:`note`.
"""
from __future__ import annotations

import csv
import hashlib
import io
import re
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from .errors import DataError, UsageError

#: Suffixes (lower case) of the image files :func:`image_files` lists.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


def warn(message: str) -> None:
    """One warning line on stderr, ``ferbench: warning: ...`` (never fatal)."""
    print(f"ferbench: warning: {message}", file=sys.stderr)


def note(message: str) -> None:
    """One informational line on stderr, ``ferbench: ...`` (e.g. what a loader dropped, by rule)."""
    print(f"ferbench: {message}", file=sys.stderr)


def merge_options(dataset: str, options: Mapping[str, Any], defaults: Mapping[str, Any],
                  choices: Mapping[str, Iterable[Any]]) -> dict[str, Any]:
    """``defaults`` overridden by ``options``; a UsageError for a key not in ``defaults`` (listing the
    valid ones) or a value not in ``choices`` (listing those). Runs validate options already; this
    guards direct calls of a loader."""
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise UsageError(f"unknown dataset option(s) for {dataset}: {', '.join(unknown)}; "
                         f"valid: {', '.join(sorted(defaults))}")
    merged = {**defaults, **options}
    for key, allowed in choices.items():
        allowed = tuple(allowed)
        if merged[key] not in allowed:
            raise UsageError(f"invalid value {merged[key]!r} for dataset.{key}; choose one of: "
                             f"{', '.join(map(str, allowed))}")
    return merged


def relative_id(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` with ``/`` separators (a stable sample id)."""
    return path.relative_to(root).as_posix()


def image_files(folder: Path) -> list[Path]:
    """Image files (:data:`IMAGE_SUFFIXES`) directly in ``folder``, sorted by name; hidden files
    (``._x.jpg``) left out; [] when there is no such folder."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file())


def subfolders(folder: Path, pattern: str | None = None) -> list[Path]:
    """Non-hidden sub-folders of ``folder`` (only those whose whole name matches the regular
    expression ``pattern``, when given), sorted by name; [] when there is no such folder."""
    if not folder.is_dir():
        return []
    regex = re.compile(pattern) if pattern is not None else None
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")
                  and (regex is None or regex.fullmatch(p.name)))


def child_folder(folder: Path, name: str) -> Path | None:
    """The sub-folder ``name`` of ``folder``, matched exactly or else case-insensitively; None if absent."""
    exact = folder / name
    if exact.is_dir():
        return exact
    if not folder.is_dir():
        return None
    return next((entry for entry in sorted(folder.iterdir())
                 if entry.is_dir() and entry.name.lower() == name.lower()), None)


def require(path: Path, layout: str) -> Path:
    """``path`` if it exists; else a DataError naming it and the expected layout."""
    if not path.exists():
        raise DataError(f"missing {path}; expected layout: {layout}")
    return path


def read_text(path: Path) -> str:
    """A text file as str, without a UTF-8 byte-order mark and with ``\\n`` line ends."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    text = raw.decode("utf-8-sig", errors="replace")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def read_lines(path: Path) -> list[str]:
    """Non-empty, stripped lines of a text file (CRLF, BOM and a missing final newline tolerated)."""
    return [line.strip() for line in read_text(path).split("\n") if line.strip()]


def read_csv(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV file with a header, as dicts (header names stripped)."""
    reader = csv.DictReader(io.StringIO(read_text(path)))
    if reader.fieldnames is None:
        raise DataError(f"{path} is empty; expected a CSV file with a header row")
    reader.fieldnames = [name.strip() for name in reader.fieldnames]
    return [{k: (v or "").strip() for k, v in row.items() if k is not None} for row in reader]


def read_yaml(path: Path, what: str) -> Any:
    """A YAML file's content; a one-line UsageError names ``what`` (e.g. ``published results``), the
    file and, for a syntax error, its line."""
    import yaml

    try:
        return yaml.safe_load(read_text(path))
    except DataError as exc:
        raise UsageError(f"{what}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise UsageError(f"{what} {str(path)!r} is not valid YAML{f' at line {mark.line + 1}' if mark else ''}") from None


def fingerprint(paths: Iterable[Path], *extra: object) -> str:
    """A cheap content key for a list of files: names, sizes and modification times (plus ``extra``).

    Any file replaced, added, removed or edited changes it, without reading every byte of a large set.
    """
    digest = hashlib.sha256(repr(extra).encode())
    for path in paths:
        try:
            stat = path.stat()
            digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        except OSError:
            digest.update(f"{path}\0missing\n".encode())
    return digest.hexdigest()[:20]


def read_image(path: Path, channels: int = 3) -> np.ndarray:
    """An image file as uint8 ``[H, W, channels]``: grayscale/palette/alpha converted; 16-bit images
    (depth maps) scaled from their own min..max to 0..255. Raises OSError/ValueError when unreadable."""
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
            values = np.asarray(image, dtype=np.float64)
            low, high = float(values.min()), float(values.max())
            scaled = (values - low) / (high - low) * 255 if high > low else np.zeros_like(values)
            gray = scaled.astype(np.uint8)
            return np.repeat(gray[..., None], channels, axis=2) if channels == 3 else gray[..., None]
        converted = image.convert("RGB" if channels == 3 else "L")
        array = np.asarray(converted, dtype=np.uint8)
    return array if channels == 3 else array[..., None]


def resize(array: np.ndarray, size: int) -> np.ndarray:
    """Square-resize a uint8 ``[H, W, C]`` array with bicubic (anti-aliased) interpolation."""
    from PIL import Image

    if array.shape[0] == size and array.shape[1] == size:
        return array
    channels = array.shape[2]
    image = Image.fromarray(array[..., 0] if channels == 1 else array)
    out = np.asarray(image.resize((size, size), Image.Resampling.BICUBIC), dtype=np.uint8)
    return out[..., None] if channels == 1 else out
