"""Pieces shared by the image-file dataset plugins (RAF-DB, FERPlus, AffectNet, CK+; usable by any other).

- layouts: :data:`Finder`, :func:`first_found`, :func:`detect_layout` (``layout: auto`` or an explicit
  choice, else a DataError listing every path checked) and :func:`open_layout` (merged options, data
  root, layout and base folder, for a loader's first lines);
- label files: :func:`numbered_lines` (non-blank lines with their line numbers, for errors) and
  :func:`first_occurrences` (keep the first of duplicated keys, with one warning);
- class folders: :data:`EMOTION_WORDS` and :func:`emotion_from_word` ("happy", "Angry", "sadness" ... ->
  canonical class names);
- pixels: :func:`image_file_pixels`, a ``load_pixels`` decoding image files once through the pixel cache;
- :class:`SampleTable`: rows collected while a loader reads label files, turned into FERData.

Generic file and folder helpers (``warn``, ``merge_options``, ``image_files`` ...) are in
:mod:`ferbench.datafiles`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ClassVar, Mapping, Optional, Sequence

import numpy as np

from ferbench.data import FERData
from ferbench.datafiles import fingerprint, merge_options, read_image, read_text, relative_id, warn
from ferbench.errors import DataError
from ferbench.pixelcache import Pixels, cached_pixels

#: ``finder(root) -> (base folder where the layout was found or None, paths checked)``.
Finder = Callable[[Path], tuple[Optional[Path], list[Path]]]
#: ``transform(row, image) -> image`` applied to each decoded RGB image before resizing.
Transform = Callable[[int, np.ndarray], np.ndarray]

#: Emotion words used as class-folder names in re-packaged copies -> canonical class name.
EMOTION_WORDS = {
    "neutral": "neutral", "happy": "happiness", "happiness": "happiness", "surprise": "surprise",
    "surprised": "surprise", "sad": "sadness", "sadness": "sadness", "anger": "anger", "angry": "anger",
    "disgust": "disgust", "disgusted": "disgust", "fear": "fear", "fearful": "fear", "contempt": "contempt",
}


def emotion_from_word(word: str) -> str | None:
    """The canonical class name of an emotion word (case-insensitive), None if not an emotion word."""
    return EMOTION_WORDS.get(word.strip().lower())


def first_found(candidates: Sequence[Path]) -> tuple[Path | None, list[Path]]:
    """The first existing path of ``candidates`` (or None) and the candidates, for :data:`Finder`s."""
    return next((path for path in candidates if path.exists()), None), list(candidates)


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
    """``(options, data root, layout name, base folder)`` for a loader: the options merged by
    :func:`~ferbench.datafiles.merge_options` (``layout`` among them) and the layout found by
    :func:`detect_layout`."""
    opts = merge_options(dataset, options, defaults, choices)
    if data_root is None:
        raise DataError(f"{dataset} needs --data-root; expected layout: {layouts}")
    root = Path(data_root)
    layout, base = detect_layout(dataset, root, str(opts["layout"]), finders, layouts)
    return opts, root, layout, base


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


def image_file_pixels(namespace: str, files: Sequence[Path], ids: np.ndarray, *key_extra: object,
                      label_files: Sequence[Path] = (), transform: Transform | None = None
                      ) -> Callable[[int], Pixels]:
    """``load_pixels(size)`` reading ``files`` as RGB through the pixel cache (decoded once per size;
    unreadable files skipped and reported), each image passed through ``transform(row, image)`` when
    given (e.g. a face crop). The cache key covers ``label_files``, ``files`` and ``key_extra`` (every
    option that changes the pixels)."""
    paths = list(files)
    key = fingerprint([*label_files, *paths], namespace, *key_extra)

    def read(row: int) -> np.ndarray:
        image = read_image(paths[row], 3)
        return transform(row, image) if transform is not None else image

    def load_pixels(size: int) -> Pixels:
        return cached_pixels(namespace, key, len(paths), size, {"rgb": (read, 3)}, ids=ids)

    return load_pixels


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

    #: The per-row columns.
    COLUMNS: ClassVar[tuple[str, ...]] = ("ids", "files", "names", "split", "subjects", "keys", "extra")

    def add(self, file: Path, name: str, split: str = "", subject: str = "", key: str | None = None,
            extra: object = None) -> None:
        """Append a row; the id is ``file`` relative to the data root, with ``/`` separators."""
        sample_id = relative_id(file, self.root)
        self.ids.append(sample_id)
        self.files.append(file)
        self.names.append(name)
        self.split.append(split)
        self.subjects.append(subject)
        self.keys.append(sample_id if key is None else key)
        self.extra.append(extra)

    def __len__(self) -> int:
        return len(self.ids)

    def drop_duplicates(self, where: str) -> int:
        """Keep the first row of each key (:func:`first_occurrences`: one warning, ``where`` says
        where); returns how many rows went."""
        keep = first_occurrences(self.keys, where)
        for column in self.COLUMNS:
            setattr(self, column, [value for value, kept in zip(getattr(self, column), keep) if kept])
        return int((~keep).sum())

    def to_data(self, classes: Sequence[str], namespace: str, label_files: Sequence[Path],
                pixel_options: Sequence[object] = (), transform: Transform | None = None,
                with_split: bool = False, with_subjects: bool = False) -> FERData:
        """The rows as FERData (classes outside ``classes`` must have been left out already), pixels
        from :func:`image_file_pixels` (``label_files`` and ``pixel_options`` in the cache key)."""
        if not self.ids:
            raise DataError(f"no labelled {namespace} samples found under {self.root}; see "
                            f"`ferbench datasets` for the layouts read")
        index = {name: i for i, name in enumerate(classes)}
        ids = np.asarray(self.ids, dtype=str)
        labels = np.asarray([index[n] for n in self.names], dtype=np.int64)
        return FERData(classes=tuple(classes), ids=ids, labels=labels,
                       load_pixels=image_file_pixels(namespace, self.files, ids, *pixel_options,
                                                     label_files=label_files, transform=transform),
                       subjects=np.asarray(self.subjects, dtype=str) if with_subjects else None,
                       split=np.asarray(self.split, dtype=str) if with_split else None,
                       files=np.asarray([str(f) for f in self.files], dtype=str))
