"""Loads FERPlus as :class:`~ferbench.data.FERData` from Microsoft's PNG folders or from the two CSV files."""
from __future__ import annotations

import csv
import hashlib
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ferbench.data import FERData
from ferbench.datafiles import fingerprint, note, read_csv, require, warn
from ferbench.emotions import BASIC7, BASIC8
from ferbench.errors import DataError
from ferbench.pixelcache import Pixels, cached_pixels
from ferbench_plugins.common.image_datasets import (first_found, first_occurrences, image_file_pixels,
                                                     numbered_lines, open_layout)

from . import LAYOUTS, OPTION_CHOICES, OPTIONS
from .votes import COLUMNS, EMOTIONS, labels_for

#: Official part -> Microsoft's folder; fer2013 ``Usage`` -> official part.
FOLDERS = {"train": "FER2013Train", "val": "FER2013Valid", "test": "FER2013Test"}
USAGE = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
VOTE_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt",
                "unknown", "NF")
FER_FILES = ("fer2013.csv", "icml_face_data.csv")
SIDE = 48
CONTEMPT = BASIC8.index("contempt")


@dataclass
class Table:
    """Named, de-duplicated rows of either layout, before the label rule."""

    names: list[str] = field(default_factory=list)  # PNG names, e.g. fer0000000.png
    parts: list[str] = field(default_factory=list)  # official part: train / val / test
    votes: list[list[int]] = field(default_factory=list)
    sources: list[int] = field(default_factory=list)  # row in fer2013.csv (csv layout)
    pixels: list[str] = field(default_factory=list)  # fer2013 pixel strings (csv layout)
    unnamed: int = 0

    def add(self, name: str, part: str, votes: list[int], source: int = -1, pixels: str = "") -> None:
        if not name:
            self.unnamed += 1
            return
        self.names.append(name)
        self.parts.append(part)
        self.votes.append(votes)
        self.sources.append(source)
        self.pixels.append(pixels)

    @property
    def ids(self) -> list[str]:
        return [f"{FOLDERS[part]}/{name}" for part, name in zip(self.parts, self.names)]

    def select(self, keep: np.ndarray) -> "Table":
        """The rows where ``keep`` is true."""
        rows = np.flatnonzero(keep)
        return Table(*([column[i] for i in rows] for column in (self.names, self.parts, self.votes, self.sources,
                                                                 self.pixels)), unnamed=self.unnamed)


def _find_folders(root: Path) -> tuple[Path | None, list[Path]]:
    """Found where ``FER2013Train/label.csv`` has PNG files beside it (in the root or ``data/``)."""
    checked = []
    for base in (root, root / "data"):
        label_file = base / FOLDERS["train"] / "label.csv"
        checked += [label_file, label_file.parent / "*.png"]
        if label_file.is_file() and next(label_file.parent.glob("*.png"), None) is not None:
            return base, checked
    return None, checked


def _new_csv(root: Path) -> tuple[Path | None, list[Path]]:
    return first_found([root / "fer2013new.csv", root / "fer2013" / "fer2013new.csv"])


def _find_csv(root: Path) -> tuple[Path | None, list[Path]]:
    marker, checked = _new_csv(root)
    return (root if marker else None), checked


FINDERS = {"folders": _find_folders, "csv": _find_csv}


def _votes(fields: list[str], where: str) -> list[int]:
    try:
        votes = [int(float(value)) for value in fields]
    except ValueError:
        raise DataError(f"{where}: vote counts must be numbers, got {','.join(fields)[:80]!r}") from None
    if len(votes) != COLUMNS or min(votes) < 0:
        raise DataError(f"{where}: expected {COLUMNS} non-negative vote counts ({', '.join(VOTE_COLUMNS)})")
    return votes


def read_folders(base: Path) -> Table:
    """``FER2013{Train,Valid,Test}/label.csv``: ``<png>,"(box)",<10 votes>`` (box optional), no header."""
    table = Table()
    for part, folder in FOLDERS.items():
        label_file = require(base / folder / "label.csv", LAYOUTS)
        for number, line in numbered_lines(label_file):
            fields = [value.strip() for value in next(csv.reader([line]))]
            if len(fields) not in (COLUMNS + 1, COLUMNS + 2):
                raise DataError(f"{label_file} line {number}: expected '<png name>,\"(0, 0, 48, 48)\",<10 votes>', "
                                f"got {line[:80]!r}")
            table.add(fields[0], part, _votes(fields[-COLUMNS:], f"{label_file} line {number}"))
    return table


def _columns(rows: list[dict[str, str]], path: Path, needed: tuple[str, ...]) -> None:
    if not rows:
        raise DataError(f"{path} has no data rows; expected a header with {', '.join(needed)} and one row per image")
    missing = [name for name in needed if name not in rows[0]]
    if missing:
        raise DataError(f"{path} lacks the column(s) {', '.join(missing)}; expected a header with {', '.join(needed)}")


def _fer_csv(root: Path) -> Path:
    found, checked = first_found([folder / name for folder in (root, root / "fer2013") for name in FER_FILES])
    if found is None:
        raise DataError(f"missing fer2013.csv (the image source; looked for {', '.join(map(str, checked))}); "
                        f"expected layout: {LAYOUTS}")
    return found


def read_csv_layout(root: Path) -> tuple[Table, Path, Path]:
    """``fer2013new.csv`` joined by row with ``fer2013.csv`` (pixel strings included), and both paths."""
    found, checked = _new_csv(root)
    new_path = require(found or checked[0], LAYOUTS)
    labels = read_csv(new_path)
    _columns(labels, new_path, ("Usage", "Image name") + VOTE_COLUMNS)
    fer_path = _fer_csv(root)
    images = read_csv(fer_path)
    _columns(images, fer_path, ("Usage", "pixels"))
    if len(images) != len(labels):
        raise DataError(f"{fer_path} has {len(images)} rows but {new_path} has {len(labels)}; the FER+ labels "
                        "are joined by row position, so both must be the complete files (35,887 rows)")
    table = Table()
    for row, (label, image) in enumerate(zip(labels, images)):
        part = USAGE.get(label["Usage"])
        if part is None or image["Usage"] != label["Usage"]:
            raise DataError(f"row {row + 2}: Usage {label['Usage']!r} in {new_path} but {image['Usage']!r} in "
                            f"{fer_path}; expected the same Training/PublicTest/PrivateTest rows in both files")
        table.add(label["Image name"], part, _votes([label[c] for c in VOTE_COLUMNS], f"{new_path} row {row + 2}"),
                  row, image["pixels"])
    return table, new_path, fer_path


def decode_pixels(text: str) -> np.ndarray:
    """A fer2013 pixel string (2,304 space-separated values) as uint8 ``[48, 48]``; ValueError if malformed."""
    values = np.array(text.split(), dtype=np.int64)
    if values.size != SIDE * SIDE or values.min() < 0 or values.max() > 255:
        raise ValueError(f"expected {SIDE * SIDE} values in 0..255, got {values.size}")
    return values.reshape(SIDE, SIDE).astype(np.uint8)


class CsvPixels:
    """``load_pixels`` for the csv layout: the pixel strings of the table's rows are held until the
    first decode into the pixel cache, then released (re-read from fer2013.csv if ever needed again)."""

    def __init__(self, fer_path: Path, sources: list[int], strings: list[str], ids: np.ndarray, key: str) -> None:
        self.fer_path, self.sources, self.ids, self.key = fer_path, sources, ids, key
        self._strings: list[str] | None = strings
        self._lock = threading.Lock()

    def _text(self, index: int) -> str:
        with self._lock:
            if self._strings is None:
                images = read_csv(self.fer_path)
                self._strings = [images[row]["pixels"] for row in self.sources]
            return self._strings[index]

    def __call__(self, size: int) -> Pixels:
        try:
            return cached_pixels("ferplus", self.key, len(self.sources), size,
                                 {"rgb": (lambda i: decode_pixels(self._text(i)), 3)}, ids=self.ids)
        finally:
            self._strings = None


def _warn_malformed(strings: list[str], ids: list[str], fer_path: Path) -> None:
    bad = [i for i, text in enumerate(strings) if text.strip().count(" ") != SIDE * SIDE - 1]
    if bad:
        warn(f"{len(bad)} pixel string(s) in {fer_path} are not {SIDE}x{SIDE} values (e.g. {ids[bad[0]]}); "
             "those images are unreadable and will be skipped")


def _labels(table: Table, opts: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, dict[str, int]]:
    """Hard labels (-1 = dropped), soft targets (probability mode) and the split column, with drop counts."""
    split = np.array(table.parts)
    if opts["train_on_valid"]:
        split[split == "val"] = "train"
    votes = np.array(table.votes, dtype=np.int64).reshape(-1, COLUMNS)
    train_mode = str(opts["label_mode"])
    eval_mode = str(opts["eval_label_mode"])
    if eval_mode == "auto":
        eval_mode = "majority" if train_mode == "probability" else train_mode
    labels = np.full(len(split), -1, dtype=np.int64)
    soft = np.zeros((len(split), EMOTIONS)) if train_mode == "probability" else None
    for mode, rows in ((train_mode, split == "train"), (eval_mode, split != "train")):
        hard, targets = labels_for(mode, votes[rows], str(opts["plurality_ties"]))
        labels[rows] = hard
        if soft is not None:
            soft[rows] = targets if targets is not None else np.eye(EMOTIONS)[np.maximum(hard, 0)]
    drops = {"by the label rule": int((labels < 0).sum())}
    if int(opts["classes"]) == 7:
        drops["labelled contempt (classes=7)"] = int((labels == CONTEMPT).sum())
        labels[labels == CONTEMPT] = -1
        if soft is not None:
            soft[:, CONTEMPT] = 0.0
            sums = soft.sum(axis=1, keepdims=True)
            soft = np.divide(soft, sums, out=np.zeros_like(soft), where=sums > 0)
    return labels, soft, split, drops


def _load(data_root: Path | None, options: Mapping[str, Any], classes: tuple[str, ...]) -> FERData:
    opts, _, layout, base = open_layout("FERPlus", data_root, options, OPTIONS, OPTION_CHOICES, FINDERS, LAYOUTS)
    if layout == "folders":
        table, where = read_folders(base), f"{base}/FER2013{{Train,Valid,Test}}/label.csv"
    else:
        table, new_path, fer_path = read_csv_layout(base)
        where = str(new_path)
    total = len(table.names) + table.unnamed
    table = table.select(first_occurrences(table.ids, where))
    labels, soft, split, drops = _labels(table, opts)
    keep = labels >= 0
    note(f"ferplus ({layout} layout, {opts['label_mode']} labels, {opts['classes']} classes): kept "
         f"{int(keep.sum())} of {total} rows; dropped {table.unnamed} without an image name, "
         f"{total - table.unnamed - len(keep)} duplicated" + "".join(f", {n} {why}" for why, n in drops.items()))
    table = table.select(keep)
    ids = np.array(table.ids)
    columns = dict(classes=classes, ids=ids, labels=labels[keep], split=split[keep],
                   soft_labels=None if soft is None else soft[keep][:, :len(classes)])
    if layout == "folders":
        files = [base / sample_id for sample_id in ids]
        return FERData(**columns, load_pixels=image_file_pixels("ferplus", files, ids, layout),
                       files=np.array([str(f) for f in files]))
    _warn_malformed(table.pixels, list(ids), fer_path)
    rows_digest = hashlib.sha256(np.asarray(table.sources, dtype=np.int64).tobytes()).hexdigest()[:16]
    key = fingerprint([fer_path, new_path], "csv", rows_digest)
    return FERData(**columns, load_pixels=CsvPixels(fer_path, table.sources, table.pixels, ids, key))


def load(data_root: Path | None, options: Mapping[str, Any]) -> FERData:
    """``ferplus`` from ``data_root``: BASIC8, or BASIC7 with ``classes: 7``; ``options`` are the run
    config's ``dataset`` section."""
    return _load(data_root, options, BASIC7 if int(options.get("classes", 8)) == 7 else BASIC8)
