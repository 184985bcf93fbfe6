"""Loads AffectNet (manually annotated part) as :class:`~ferbench.data.FERData`; see the package
docstring for the layouts, options and choices."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from ferbench.data import FERData
from ferbench.datafiles import image_files, merge_options, read_text, require, subfolders, warn
from ferbench.emotions import BASIC7, BASIC8
from ferbench.errors import DataError
from ferbench_plugins.common.image_datasets import SampleTable, emotion_from_word

from . import CHOICES, LAYOUT_TEXT, LAYOUTS, OPTIONS

#: Native ``expression`` codes 0-7 -> canonical names (datasets.md §1, §4.1).
NATIVE = {0: "neutral", 1: "happiness", 2: "sadness", 3: "surprise", 4: "fear", 5: "disgust", 6: "anger",
          7: "contempt"}
#: Codes 8 None, 9 Uncertain, 10 No-Face, and the folder names they get: left out (datasets.md §4.1).
EXCLUDED_CODES = (8, 9, 10)
EXCLUDED_WORDS = ("none", "uncertain", "no-face", "no_face", "noface", "non-face")
CSV_COLUMNS = ("subDirectory_filePath", "face_x", "face_y", "face_width", "face_height", "facial_landmarks",
               "expression", "valence", "arousal")
CSV_SPLITS = (("training.csv", "train"), ("validation.csv", "test"))
NPY_SPLITS = (("train_set",), ("val_set", "valid_set"))
FOLDER_SPLITS = (("train",), ("val", "valid", "validation", "test"))

Box = tuple[int, int, int, int]


def load7(data_root: Path, options: Mapping[str, Any]) -> FERData:
    """AffectNet-7: the seven basic classes (contempt left out)."""
    return _load(data_root, options, BASIC7, "affectnet7")


def load8(data_root: Path, options: Mapping[str, Any]) -> FERData:
    """AffectNet-8: the seven basic classes plus contempt."""
    return _load(data_root, options, BASIC8, "affectnet8")


def _load(root: Path, options: Mapping[str, Any], classes: tuple[str, ...], name: str) -> FERData:
    opts = merge_options(name, options, OPTIONS, CHOICES)
    layout, crop = detect_layout(root, str(opts["layout"])), str(opts["crop"])
    table = SampleTable(root)
    label_files = READERS[layout](root, table, set(classes))
    table.drop_duplicates(f"the {name} {layout} label files under {root}")
    cropping = layout == "csv" and crop == "face_box"
    boxes = list(table.extra)

    def face(row: int, image: np.ndarray) -> np.ndarray:
        return crop_box(image, boxes[row])

    return table.to_data(classes, name, label_files, (layout, "face_box" if cropping else "none"),
                         transform=face if cropping else None, with_split=True)


def detect_layout(root: Path, layout: str) -> str:
    """The layout to read: ``layout`` itself (a valid choice), or with ``auto`` the first one whose files
    are present."""
    if layout != "auto":
        return layout
    if _csv_dir(root) is not None:
        return "csv"
    if _split_dir(root, NPY_SPLITS[0]) and (root / "train_set" / "annotations").is_dir():
        return "npy"
    if _split_dir(root, FOLDER_SPLITS[0]) is not None:
        return "imagefolder"
    checked = [root / "Manually_Annotated_file_lists" / "training.csv", root / "training.csv",
               root / "train_set" / "annotations", root / "train"]
    raise DataError(f"no AffectNet layout found in {root} (checked {', '.join(map(str, checked))}); "
                    f"expected one of: {LAYOUT_TEXT}")


def _csv_dir(root: Path) -> Path | None:
    for folder in (root / "Manually_Annotated_file_lists", root):
        if (folder / "training.csv").is_file():
            return folder
    return None


def _split_dir(root: Path, names: tuple[str, ...]) -> Path | None:
    return next((root / n for n in names if (root / n).is_dir()), None)


def _code(text: str, where: str) -> int:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value.is_integer() or not 0 <= value <= 10:
        raise DataError(f"{where}: expression {text!r} is not a code 0-10; expected layout: {LAYOUT_TEXT}")
    return int(value)


def _keep(code: int, classes: set[str]) -> str | None:
    """The class name of a native code when the dataset uses it, else None."""
    name = NATIVE.get(code)
    return name if name in classes else None


# ------------------------------------------------------------------------------------------ csv
def read_csv_layout(root: Path, table: SampleTable, classes: set[str]) -> list[Path]:
    """``training.csv`` (train) and ``validation.csv`` (test) rows with their face boxes."""
    folder = _csv_dir(root) or root / "Manually_Annotated_file_lists"
    images = require(root / "Manually_Annotated_Images", LAYOUTS["csv"])
    files = [require(folder / file_name, LAYOUTS["csv"]) for file_name, _ in CSV_SPLITS]  # both, before parsing
    for path, (_, split) in zip(files, CSV_SPLITS):
        unnamed = 0
        for line, row, columns in _csv_rows(path):
            relative = row[columns["subDirectory_filePath"]].replace("\\", "/").strip("/")
            name = _keep(_code(row[columns["expression"]], f"{path}:{line}"), classes)
            unnamed += not relative
            if relative and name:
                table.add(images / relative, name, split, extra=_box(row, columns))
        if unnamed:
            warn(f"{unnamed} row(s) without an image path in {path} skipped")
    return files


def _csv_rows(path: Path) -> list[tuple[int, list[str], dict[str, int]]]:
    """Non-blank rows as (line number, fields, column index); a header row is used when present."""
    reader = csv.reader(io.StringIO(read_text(path)))
    rows = [(reader.line_num, [f.strip() for f in row]) for row in reader if any(f.strip() for f in row)]
    columns = {name: i for i, name in enumerate(CSV_COLUMNS)}
    if rows and rows[0][1][0] == CSV_COLUMNS[0]:  # header present (validation.csv may lack it, §4.1)
        header = rows.pop(0)[1]
        columns = {name: header.index(name) for name in CSV_COLUMNS if name in header}
        missing = [n for n in ("subDirectory_filePath", "expression") if n not in columns]
        if missing:
            raise DataError(f"{path}: header lacks column(s) {', '.join(missing)}; expected {','.join(CSV_COLUMNS)}")
    need = max(columns["subDirectory_filePath"], columns["expression"]) + 1
    for line, row in rows:
        if len(row) < need:
            raise DataError(f"{path}:{line}: {len(row)} field(s), expected the columns {','.join(CSV_COLUMNS)}")
    return [(line, row, columns) for line, row in rows]


def _box(row: list[str], columns: dict[str, int]) -> Box | None:
    """The face box (x, y, width, height) of a csv row, None when absent or not positive."""
    try:
        x, y, w, h = (int(float(row[columns[c]])) for c in ("face_x", "face_y", "face_width", "face_height"))
    except (KeyError, IndexError, ValueError):
        return None
    return (x, y, w, h) if w > 0 and h > 0 else None


def crop_box(image: np.ndarray, box: Box | None) -> np.ndarray:
    """``image[y:y+h, x:x+w]`` clipped to the image (datasets.md §4.1); the whole image when the box is
    missing or lies outside it."""
    if box is None:
        return image
    x, y, w, h = box
    crop = image[max(y, 0):max(y + h, 0), max(x, 0):max(x + w, 0)]
    return crop if crop.shape[0] and crop.shape[1] else image


# ------------------------------------------------------------------------------------------ npy
def read_npy_layout(root: Path, table: SampleTable, classes: set[str]) -> list[Path]:
    """``<split>/annotations/<n>_exp.npy`` -> ``<split>/images/<n>.jpg``, ordered by ``n``."""
    folders = [_split_dir(root, names) or root / names[0] for names in NPY_SPLITS]
    files = [require(folder / "annotations", LAYOUTS["npy"]) for folder in folders]  # both, before parsing
    for folder, annotation_dir, split in zip(folders, files, ("train", "test")):
        labels = sorted(annotation_dir.glob("*_exp.npy"), key=lambda p: _numeric_key(p.name[:-len("_exp.npy")]))
        if not labels:
            raise DataError(f"no *_exp.npy files in {annotation_dir}; expected layout: {LAYOUTS['npy']}")
        for path in labels:
            name = _keep(_npy_code(path), classes)
            if name:
                table.add(folder / "images" / f"{path.name[:-len('_exp.npy')]}.jpg", name, split)
    return files


def _numeric_key(stem: str) -> tuple[int, str]:
    return (int(stem), "") if stem.isdigit() else (-1, stem)


def _npy_code(path: Path) -> int:
    """The expression code in an ``_exp.npy`` file (stored as a number or as a string such as '3')."""
    try:
        value = np.load(path, allow_pickle=False)
        text = str(np.asarray(value).reshape(-1)[0])
    except (OSError, ValueError, IndexError, EOFError) as exc:
        raise DataError(f"cannot read {path} ({exc.__class__.__name__}); expected a .npy file holding one "
                        "expression code 0-10") from None
    return _code(text, str(path))


# ---------------------------------------------------------------------------------- imagefolder
def read_folder_layout(root: Path, table: SampleTable, classes: set[str]) -> list[Path]:
    """``train/<class>/*`` and the first of ``val``/``valid``/``validation``/``test`` as the test set."""
    for names, split in zip(FOLDER_SPLITS, ("train", "test")):
        folder = _split_dir(root, names)
        if folder is None:
            raise DataError(f"missing {root / names[0]} (or {', '.join(names[1:]) or '-'}); "
                            f"expected layout: {LAYOUTS['imagefolder']}")
        for class_dir in subfolders(folder):
            name = _folder_class(class_dir)
            if name in classes:
                for image in image_files(class_dir):
                    table.add(image, name, split, key=f"{split}/{image.name}")
    return []  # the labels are the folder names: the image paths alone identify the data


def _folder_class(folder: Path) -> str | None:
    """A class folder's canonical class (None for the excluded codes 8-10)."""
    name = folder.name
    if name.isdigit() and int(name) in NATIVE:
        return NATIVE[int(name)]
    if (name.isdigit() and int(name) in EXCLUDED_CODES) or name.lower() in EXCLUDED_WORDS:
        return None
    canonical = emotion_from_word(name)
    if canonical is None:
        raise DataError(f"class folder {folder} is neither a native AffectNet code 0-10 nor an emotion name; "
                        f"expected layout: {LAYOUTS['imagefolder']}")
    return canonical


READERS: dict[str, Callable[[Path, SampleTable, set[str]], list[Path]]] = {
    "csv": read_csv_layout, "npy": read_npy_layout, "imagefolder": read_folder_layout,
}
