"""Pieces shared by image-file dataset plugins (written for AffectNet and CK+, usable by any other).

* :class:`SampleTable` collects rows (id, image file, class name, split, subject) while a loader reads
  label files, drops duplicated keys (keeping the first, with one warning) and turns the rows into
  :class:`~ferbench.data.FERData` whose pixels come from :func:`ferbench.pixelcache.cached_pixels`.
* :func:`emotion_from_word` maps the class-folder names of re-packaged ImageFolder copies ("happy",
  "Angry", "sadness" ...) onto ferbench's canonical names; :func:`image_files` lists a folder's images.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ferbench.data import FERData
from ferbench.datafiles import fingerprint, read_image
from ferbench.errors import DataError
from ferbench.pixelcache import Pixels, cached_pixels

#: ``transform(row, image) -> image`` applied to each decoded RGB image before resizing.
Transform = Callable[[int, np.ndarray], np.ndarray]

#: Suffixes (lower case) of the image files a class folder may hold.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")

#: Emotion words used as class-folder names in re-packaged copies -> canonical class name.
EMOTION_WORDS = {
    "neutral": "neutral", "happy": "happiness", "happiness": "happiness", "surprise": "surprise",
    "surprised": "surprise", "sad": "sadness", "sadness": "sadness", "anger": "anger", "angry": "anger",
    "disgust": "disgust", "disgusted": "disgust", "fear": "fear", "fearful": "fear", "contempt": "contempt",
}


def warn(message: str) -> None:
    """One warning line on stderr, in ferbench's format."""
    print(f"ferbench: warning: {message}", file=sys.stderr)


def emotion_from_word(word: str) -> str | None:
    """The canonical class name of an emotion word (case-insensitive), None if not an emotion word."""
    return EMOTION_WORDS.get(word.strip().lower())


def image_files(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` (hidden files skipped), sorted by name; [] if no folder."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file())


def subfolders(folder: Path) -> list[Path]:
    """Non-hidden sub-folders of ``folder``, sorted by name; [] if no folder."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


@dataclass
class SampleTable:
    """Rows of a dataset as a loader reads them. ``key`` (default: the id) identifies duplicates."""

    root: Path
    ids: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    split: list[str] = field(default_factory=list)
    subjects: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    extra: list[object] = field(default_factory=list)

    def add(self, file: Path, name: str, split: str = "", subject: str = "", key: str | None = None,
            extra: object = None) -> None:
        """Append a row; the id is ``file`` relative to the data root, with ``/`` separators."""
        sample_id = file.relative_to(self.root).as_posix()
        self.ids.append(sample_id)
        self.files.append(file)
        self.names.append(name)
        self.split.append(split)
        self.subjects.append(subject)
        self.keys.append(sample_id if key is None else key)
        self.extra.append(extra)

    def __len__(self) -> int:
        return len(self.ids)

    def drop_duplicates(self, what: str) -> int:
        """Keep the first row of each key; warn once (``what`` says where) and return how many went."""
        first: dict[str, int] = {}
        for row, key in enumerate(self.keys):
            first.setdefault(key, row)
        keep = sorted(first.values())
        dropped = len(self.keys) - len(keep)
        if dropped:
            for column in ("ids", "files", "names", "split", "subjects", "keys", "extra"):
                values = getattr(self, column)
                setattr(self, column, [values[i] for i in keep])
            warn(f"{dropped} duplicated entr{'y' if dropped == 1 else 'ies'} in {what}: kept the first of each")
        return dropped

    def to_data(self, classes: Sequence[str], namespace: str, label_files: Sequence[Path],
                pixel_options: Sequence[object] = (), transform: Transform | None = None,
                with_split: bool = False, with_subjects: bool = False) -> FERData:
        """The rows as FERData (classes outside ``classes`` must have been left out already).

        Pixels are read as RGB, passed through ``transform(row, image)`` when given (e.g. a face crop)
        and cached under a key made of ``label_files``, the image files and ``pixel_options``
        (every option that changes the pixels)."""
        if not self.ids:
            raise DataError(f"no labelled {namespace} samples found under {self.root}; see "
                            f"`ferbench datasets` for the layouts read")
        index = {name: i for i, name in enumerate(classes)}
        ids = np.asarray(self.ids, dtype=str)
        files = list(self.files)

        def read(row: int) -> np.ndarray:
            image = read_image(files[row], 3)
            return transform(row, image) if transform is not None else image

        def load_pixels(size: int) -> Pixels:
            key = fingerprint([*label_files, *files], namespace, *pixel_options)
            return cached_pixels(namespace, key, len(files), size, {"rgb": (read, 3)}, ids=ids)

        labels = np.asarray([index[n] for n in self.names], dtype=np.int64)
        return FERData(classes=tuple(classes), ids=ids, labels=labels, load_pixels=load_pixels,
                       subjects=np.asarray(self.subjects, dtype=str) if with_subjects else None,
                       split=np.asarray(self.split, dtype=str) if with_split else None,
                       files=np.asarray([str(f) for f in files], dtype=str))

