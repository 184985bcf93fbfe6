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


def new_csv_path(root: Path) -> Path:
    """``fer2013new.csv`` in the data root or ``fer2013/`` inside it (a DataError naming both if absent)."""
    found, checked = _new_csv(root)
    return require(found or checked[0], LAYOUTS)


def read_new_csv(path: Path) -> tuple[Table, list[str]]:
    """The named rows of ``fer2013new.csv`` (``sources`` = row number) and the Usage of every row."""
    labels = read_csv(path)
    _columns(labels, path, ("Usage", "Image name") + VOTE_COLUMNS)
    table = Table()
    for row, label in enumerate(labels):
        part = USAGE.get(label["Usage"])
        if part is None:
            raise DataError(f"{path} row {row + 2}: Usage {label['Usage']!r}; expected Training, PublicTest or "
                            "PrivateTest")
        table.add(label["Image name"], part, _votes([label[c] for c in VOTE_COLUMNS], f"{path} row {row + 2}"), row)
    return table, [label["Usage"] for label in labels]


def read_csv_layout(root: Path) -> tuple[Table, Path, Path]:
    """``fer2013new.csv`` joined by row with ``fer2013.csv`` (pixel strings included), and both paths."""
    new_path = new_csv_path(root)
    table, usages = read_new_csv(new_path)
    fer_path = _fer_csv(root)
    images = read_csv(fer_path)
    _columns(images, fer_path, ("Usage", "pixels"))
    if len(images) != len(usages):
        raise DataError(f"{fer_path} has {len(images)} rows but {new_path} has {len(usages)}; the FER+ labels "
                        "are joined by row position, so both must be the complete files (35,887 rows)")
    for row, (usage, image) in enumerate(zip(usages, images)):
        if image["Usage"] != usage:
            raise DataError(f"row {row + 2}: Usage {usage!r} in {new_path} but {image['Usage']!r} in "
                            f"{fer_path}; expected the same Training/PublicTest/PrivateTest rows in both files")
    table.pixels = [images[row]["pixels"] for row in table.sources]
    return table, new_path, fer_path


def label_csv_base(root: Path) -> Path:
    """The folder holding ``FER2013{Train,Valid,Test}/label.csv``: the data root or ``data/`` in it."""
    found, checked = first_found([base / FOLDERS["train"] / "label.csv" for base in (root, root / "data")])
    if found is None:
        raise DataError(f"dataset.votes=label.csv needs Microsoft's FER2013{{Train,Valid,Test}}/label.csv (data/ of "
                        f"the FERPlus repository); looked for {', '.join(map(str, checked))}. Put them there, or "
                        "set dataset.votes=fer2013new.csv (1,601 images have other votes there)")
    return found.parent.parent


def with_votes(images: Table, votes: Table, where: str) -> Table:
    """The rows of ``votes`` (names, parts, votes) with the image columns (``sources``, ``pixels``) of
    the first ``images`` row of the same id; vote rows naming an image ``images`` lacks are dropped."""
    first: dict[str, int] = {}
    for row, sample_id in enumerate(images.ids):
        first.setdefault(sample_id, row)
    keep = np.array([sample_id in first for sample_id in votes.ids], dtype=bool)
    if not keep.all():
        warn(f"{int((~keep).sum())} row(s) of {where} name images fer2013new.csv does not list; left out")
    table = votes.select(keep)
    rows = [first[sample_id] for sample_id in table.ids]
    table.sources, table.pixels = [images.sources[r] for r in rows], [images.pixels[r] for r in rows]
    return table


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


def _label_files(base: Path) -> str:
    return f"{base}/FER2013{{Train,Valid,Test}}/label.csv"


@dataclass
class Votes:
    """The rows to label, read with the chosen vote file."""

    table: Table
    where: str  # the vote file(s), for messages
    csv_paths: tuple[Path, Path] | None = None  # (fer2013new.csv, fer2013.csv) when pixels come from the csv


def read_votes(layout: str, root: Path, base: Path, votes: str) -> Votes:
    """The layout's rows with the votes of ``votes`` (``label.csv`` or ``fer2013new.csv``), read from
    wherever that file is: a layout's own vote file, or the other one joined by sample id."""
    if layout == "folders":
        if votes == "label.csv":
            return Votes(read_folders(base), _label_files(base))
        new_path = new_csv_path(root)
        return Votes(read_new_csv(new_path)[0], str(new_path))
    table, new_path, fer_path = read_csv_layout(base)
    if votes == "fer2013new.csv":
        return Votes(table, str(new_path), (new_path, fer_path))
    label_base = label_csv_base(root)
    where = _label_files(label_base)
    return Votes(with_votes(table, read_folders(label_base), where), where, (new_path, fer_path))


def _load(data_root: Path | None, options: Mapping[str, Any], classes: tuple[str, ...]) -> FERData:
    opts, root, layout, base = open_layout("FERPlus", data_root, options, OPTIONS, OPTION_CHOICES, FINDERS, LAYOUTS)
    votes = read_votes(layout, root, base, str(opts["votes"]))
    table = votes.table
    total = len(table.names) + table.unnamed
    table = table.select(first_occurrences(table.ids, votes.where))
    labels, soft, split, drops = _labels(table, opts)
    keep = labels >= 0
    note(f"ferplus ({layout} layout, votes of {opts['votes']}, {opts['label_mode']} labels, {opts['classes']} "
         f"classes): kept {int(keep.sum())} of {total} rows; dropped {table.unnamed} without an image name, "
         f"{total - table.unnamed - len(keep)} duplicated" + "".join(f", {n} {why}" for why, n in drops.items()))
    table = table.select(keep)
    ids = np.array(table.ids)
    columns = dict(classes=classes, ids=ids, labels=labels[keep], split=split[keep],
                   soft_labels=None if soft is None else soft[keep][:, :len(classes)])
    if votes.csv_paths is None:
        files = [base / sample_id for sample_id in ids]
        return FERData(**columns, load_pixels=image_file_pixels("ferplus", files, ids, layout),
                       files=np.array([str(f) for f in files]))
    new_path, fer_path = votes.csv_paths
    _warn_malformed(table.pixels, list(ids), fer_path)
    rows_digest = hashlib.sha256(np.asarray(table.sources, dtype=np.int64).tobytes()).hexdigest()[:16]
    key = fingerprint([fer_path, new_path], "csv", rows_digest)
    return FERData(**columns, load_pixels=CsvPixels(fer_path, table.sources, table.pixels, ids, key))


def load(data_root: Path | None, options: Mapping[str, Any]) -> FERData:
    """``ferplus`` from ``data_root``: BASIC8, or BASIC7 with ``classes: 7``; ``options`` are the run
    config's ``dataset`` section."""
    return _load(data_root, options, BASIC7 if int(options.get("classes", 8)) == 7 else BASIC8)
