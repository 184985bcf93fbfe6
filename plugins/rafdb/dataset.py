"""Loads RAF-DB basic as :class:`~ferbench.data.FERData` from any layout documented in the package."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from ferbench.data import FERData
from ferbench.datafiles import image_files, relative_id, require, subfolders
from ferbench.emotions import BASIC7
from ferbench.errors import DataError
from ferbench_plugins.common.image_datasets import (Finder, first_found, first_occurrences, image_file_pixels,
                                                     numbered_lines, open_layout)

from . import LAYOUTS, NATIVE_CODES, OPTION_CHOICES, OPTIONS

#: Native code -> index into BASIC7.
CODE_INDEX = {code: BASIC7.index(name) for code, name in NATIVE_CODES.items()}
#: Folders, inside the data root, where a label-file layout may sit.
BASES = (".", "basic", "raf-basic")
LABEL_FILES = ("list_patition_label.txt", "list_partition_label.txt")
#: (training folder, folders that may hold the official test set beside it).
FOLDER_PAIRS = (("train", ("valid", "test", "val")), ("train_set", ("val_set", "test_set")))


@dataclass
class Rows:
    """The sample table of one layout, before label mapping."""

    files: list[Path] = field(default_factory=list)
    codes: list[int] = field(default_factory=list)
    split: list[str] = field(default_factory=list)

    def add(self, file: Path, code: int, split: str) -> None:
        self.files.append(file)
        self.codes.append(code)
        self.split.append(split)


def _marker_finder(*relatives: str) -> Finder:
    """A finder for a layout recognised by a file under ``root``, ``root/basic`` or ``root/raf-basic``;
    the base is the folder that holds ``EmoLabel/``."""
    def find(root: Path) -> tuple[Path | None, list[Path]]:
        marker, checked = first_found([root / base / rel for base in BASES for rel in relatives])
        return (marker.parent.parent if marker else None), checked
    return find


def _find_class_folders(root: Path) -> tuple[Path | None, list[Path]]:
    marker, checked = first_found([root / train for train, _ in FOLDER_PAIRS])
    return (root if marker else None), checked


FINDERS: dict[str, Finder] = {
    "official": _marker_finder(*(f"EmoLabel/{name}" for name in LABEL_FILES)),
    "apvit": _marker_finder("EmoLabel/train.txt"),
    "class_folders": _find_class_folders,
}


def _code(text: str) -> int | None:
    return int(text) if text.isdigit() and int(text) in NATIVE_CODES else None


def parse_label_file(path: Path) -> list[tuple[str, int]]:
    """``(image name, native code)`` per line of a ``<name> <code 1-7>`` label file."""
    entries = []
    for number, line in numbered_lines(path):
        parts = line.split()
        code = _code(parts[1]) if len(parts) == 2 else None
        if code is None:
            raise DataError(f"{path} line {number}: expected '<image name> <label 1-7>', got {line[:80]!r}")
        entries.append((parts[0], code))
    return entries


def _deduplicated(entries: list[tuple[str, int]], where: str) -> list[tuple[str, int]]:
    keep = first_occurrences([name for name, _ in entries], where)
    return [entry for entry, kept in zip(entries, keep) if kept]


def aligned_name(name: str) -> str:
    """``train_00001.jpg`` -> ``train_00001_aligned.jpg`` (unchanged when already aligned)."""
    path = Path(name)
    return name if path.stem.endswith("_aligned") else f"{path.stem}_aligned{path.suffix}"


def _split_of(name: str, label_file: Path) -> str:
    for split in ("train", "test"):
        if name.startswith(f"{split}_"):
            return split
    raise DataError(f"{label_file}: cannot tell the split of {name!r}; official names start with "
                    "'train_' or 'test_'")


def read_official(base: Path, variant: str) -> Rows:
    """``EmoLabel/list_patition_label.txt`` + ``Image/aligned`` (or ``Image/original``)."""
    label_file = next((base / "EmoLabel" / name for name in LABEL_FILES if (base / "EmoLabel" / name).exists()),
                      base / "EmoLabel" / LABEL_FILES[0])
    entries = _deduplicated(parse_label_file(require(label_file, LAYOUTS)), str(label_file))
    folder = require(base / "Image" / variant, LAYOUTS)
    rows = Rows()
    for name, code in entries:
        rows.add(folder / (aligned_name(name) if variant == "aligned" else name), code, _split_of(name, label_file))
    return rows


def read_apvit(base: Path, variant: str) -> Rows:
    """``EmoLabel/train.txt`` + ``EmoLabel/test.txt`` + ``Image/aligned_224/`` (``_aligned`` stripped)."""
    entries = []
    for split in ("train", "test"):
        label_file = require(base / "EmoLabel" / f"{split}.txt", LAYOUTS)
        entries += [(name.replace("_aligned", ""), code, split) for name, code in parse_label_file(label_file)]
    keep = first_occurrences([name for name, _, _ in entries], base / "EmoLabel")
    folder = require(base / "Image" / "aligned_224", LAYOUTS)
    rows = Rows()
    for (name, code, split), kept in zip(entries, keep):
        if kept:
            rows.add(folder / name, code, split)
    return rows


def _class_tree(folder: Path, split: str, rows: Rows) -> None:
    """Add the images of ``folder/1..7/`` to ``rows``."""
    classes = subfolders(folder)
    strange = [p.name for p in classes if _code(p.name) is None]
    if strange or not classes:
        loose = len(image_files(folder))
        found = f"folders {', '.join(strange[:8])}" if strange else f"{loose} images and no class folders"
        raise DataError(f"{folder} must hold class folders named by the RAF-DB code 1..7 (1 Surprise, 2 Fear, "
                        f"3 Disgust, 4 Happiness, 5 Sadness, 6 Anger, 7 Neutral); found {found}")
    for sub in classes:
        for file in image_files(sub):
            rows.add(file, int(sub.name), split)


def read_class_folders(base: Path, variant: str) -> Rows:
    """``train/1..7`` + ``valid/1..7`` (or ``test/``), or ``train_set/1..7`` + ``val_set/1..7``."""
    for train_name, test_names in FOLDER_PAIRS:
        if not (base / train_name).is_dir():
            continue
        test_dir, checked = first_found([base / name for name in test_names])
        if test_dir is None:
            raise DataError(f"found {base / train_name} but none of {', '.join(map(str, checked))} beside it "
                            f"(the official test set); expected layout: {LAYOUTS}")
        rows = Rows()
        _class_tree(base / train_name, "train", rows)
        _class_tree(test_dir, "test", rows)
        return rows
    raise DataError(f"no training folder {' or '.join(t for t, _ in FOLDER_PAIRS)} in {base}; "
                    f"expected layout: {LAYOUTS}")


READERS: dict[str, Callable[[Path, str], Rows]] = {
    "official": read_official, "apvit": read_apvit, "class_folders": read_class_folders}


def load(data_root: Path | None, options: Mapping[str, Any]) -> FERData:
    """RAF-DB basic from ``data_root``; ``options`` are the run config's ``dataset`` section."""
    opts, root, layout, base = open_layout("RAF-DB", data_root, options, OPTIONS, OPTION_CHOICES, FINDERS, LAYOUTS)
    variant = str(opts["image_variant"])
    if variant != "aligned" and layout != "official":
        raise DataError(f"dataset.image_variant={variant} needs the official layout (Image/{variant}/ beside "
                        f"EmoLabel/list_patition_label.txt), but {root} holds the {layout} layout")
    rows = READERS[layout](base, variant)
    if not rows.files:
        raise DataError(f"no RAF-DB samples found in {base} ({layout} layout); expected layout: {LAYOUTS}")
    ids = np.array([relative_id(file, root) for file in rows.files])
    return FERData(classes=BASIC7, ids=ids, labels=np.array([CODE_INDEX[c] for c in rows.codes]),
                   load_pixels=image_file_pixels("rafdb", rows.files, ids, layout, variant),
                   split=np.array(rows.split), files=np.array([str(file) for file in rows.files]))
