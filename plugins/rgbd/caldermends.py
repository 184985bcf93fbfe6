"""``caldermends``: CalD3r and MenD3s, spontaneous RGB-D expressions (Intel RealSense SR300), merged.

Layout (datasets.md §8.2; no official readme exists, this is the tree [ERAI] reads)::

    <root>/CalD3r/<Emotion>/RGB/<g>_<sss>_<code>_<label>_Color.png
    <root>/CalD3r/<Emotion>/DEPTH/<g>_<sss>_<code>_<label>_Depth.png
    <root>/MenD3s/<Emotion>/RGB/<g>_<ss>_<code>_<label>_Color.png      (2-digit subject id)

``<root>`` is the data root (layout ``flat``) or its one sub-folder holding ``CalD3r``/``MenD3s``, e.g.
``CalD3RMenD3s/`` (layout ``nested``); ``auto`` tries both. Folder names match case-insensitively.

Choices (each one a dataset option, recorded with the run):

* Label: the lowercase word in the file name (anger, disgust, fear, happiness, neutral, sadness,
  surprise; datasets.md §1), mapped to ferbench's BASIC7 order. A file whose ``<Emotion>`` folder
  disagrees with its name keeps the name's label (as [ERAI] does) and is counted in a warning; a
  sample found twice (same database, gender, subject, code and label in two folders) is read once,
  from the folder of its own label, and the copy is counted in a warning.
* ``classes``: 7 (default) or 6 = without surprise, the setup of the dataset paper; the thesis
  reports both (seed 004, Table 3.3: 62.50% with 7, 65.11% with 6). The 6-class variant drops the
  surprise samples and has six classes (six model outputs).
* ``databases``: ``both`` (default, the thesis merges them: 8,716 samples), ``CalD3r`` or ``MenD3s``.
* ``aligned``: [ERAI] writes eye-line-rotated copies prefixed ``aligned_`` and trains on them (the
  thesis, §3.2). ``auto`` (default) uses a sample's aligned copy where one exists, else the original;
  ``yes`` only aligned copies; ``no`` only originals. The sample id is the file actually read.
* Subject id: ``<database>-<gender>-<id>`` (e.g. ``MenD3s-F-07``): ids are only unique within a
  database and per gender (datasets.md §8.2, §10 item 10).
* ``invert_depth``: the SR300 depth PNGs are 16-bit distances (near = small; [ERAI] divides by the
  maximum 9785, datasets.md §8.2). ``true`` (default) flips the face's values so that, as for the
  BU-3DFE and Bosphorus renderings of this package, nearer = brighter and background = 0; ``false``
  keeps the stored polarity (what the thesis code fed its network).
* A sample whose depth partner is missing is left out, with a warning.

Protocols: the thesis *text* says 5-fold cross-validation, 80% train / 20% test per fold (§3.4); its
*code* (train.py, ``KFold(n_splits=5, shuffle=True, random_state=42)`` over samples) puts images of
one person on both sides, and the thesis's numbers (Tables 3.3, 3.5-3.7) come from those folds.
ferbench's default ``subject-5fold`` is subject-independent (``subject_kfold``, stratified by class,
grouped by subject key) and not comparable to them; ``sample-5fold`` (``kfold``, stratified over
samples) reproduces the thesis code's sample-level folds (not its exact permutation) and is the
protocol comparable to the thesis's numbers.

Normalisation: the thesis z-scores each modality with the mean/std of the training fold (§3.2, eq.
3.1). ferbench does that when ``data.fold_statistics`` is on: ``--set data.fold_statistics=true``
(per-modality statistics of each fold's training part, see ``ferbench.runner._normalization``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ferbench.data import FERData
from ferbench.datafiles import child_folder, merge_options, relative_id, warn
from ferbench.emotions import BASIC7
from ferbench.errors import DataError

from .common import Row, class_set, label_of, resolve_root, to_ferdata
from .options import CALDERMENDS as DEFAULTS
from .options import CALDERMENDS_CHOICES as CHOICES

DATABASES = ("CalD3r", "MenD3s")
LAYOUT = ("<root>/{CalD3r,MenD3s}/<Emotion>/RGB/<g>_<id>_<code>_<label>_Color.png + "
          "<Emotion>/DEPTH/<g>_<id>_<code>_<label>_Depth.png (optionally prefixed aligned_)")
_NAME = re.compile(r"(aligned_)?([FM])_(\d+)_([^_]+)_([a-z]+)_Color\.png", re.IGNORECASE)


@dataclass(frozen=True)
class _Image:
    rgb: Path
    aligned: bool
    gender: str
    subject: str
    code: str
    label: str


def _scan_folder(rgb_dir: Path, ignored: list[str]) -> dict[str, list[_Image]]:
    """RGB images of one ``<Emotion>/RGB`` folder grouped by name without the ``aligned_`` prefix."""
    groups: dict[str, list[_Image]] = {}
    for path in sorted(rgb_dir.iterdir()):
        match = _NAME.fullmatch(path.name)
        if not match or match.group(5).lower() not in BASIC7:
            if path.is_file():
                ignored.append(str(path))
            continue
        aligned, gender, subject, code, label = match.groups()
        key = path.name[len(aligned or ""):]
        groups.setdefault(key, []).append(_Image(path, bool(aligned), gender.upper(), subject, code, label.lower()))
    return groups


def _pick(images: list[_Image], aligned: str) -> _Image | None:
    """The copy to read: aligned or original per option ``aligned``."""
    by_kind = {image.aligned: image for image in images}
    if aligned == "yes":
        return by_kind.get(True)
    if aligned == "no":
        return by_kind.get(False)
    return by_kind.get(True) or by_kind.get(False)


#: A sample's identity: (database, gender, subject, code, label); copies of one sample share it.
Key = tuple[str, str, str, str, str]


def _database_rows(base: Path, name: str, data_root: Path, options: Mapping[str, Any],
                   problems: dict[str, list[str]]) -> list[tuple[Key, bool, Row]]:
    """(sample key, misfiled?, row) for every image pair of one database."""
    found = []
    mode = "png-invert" if options["invert_depth"] else "png"
    for emotion_dir in sorted(p for p in base.iterdir() if p.is_dir()):
        rgb_dir, depth_dir = child_folder(emotion_dir, "RGB"), child_folder(emotion_dir, "DEPTH")
        if rgb_dir is None:
            continue
        for images in _scan_folder(rgb_dir, problems["ignored"]).values():
            image = _pick(images, options["aligned"])
            if image is None:
                continue
            depth = (depth_dir or emotion_dir / "DEPTH") / (image.rgb.name[: -len("_Color.png")] + "_Depth.png")
            if not depth.is_file():
                problems["no_depth"].append(str(image.rgb))
                continue
            row = Row(id=relative_id(image.rgb, data_root), label=label_of(image.label),
                      subject=f"{name}-{image.gender}-{image.subject}", rgb=image.rgb, depth=depth, depth_mode=mode)
            sample = (name, image.gender, image.subject, image.code.lower(), image.label)
            found.append((sample, emotion_dir.name.lower() != image.label, row))
    return found


def _unique(candidates: list[tuple[Key, bool, Row]], problems: dict[str, list[str]]) -> list[Row]:
    """One row per sample; of two copies (one in the wrong <Emotion> folder) the correctly filed one."""
    kept: dict[Key, tuple[bool, Row]] = {}
    for sample, misfiled, row in candidates:
        previous = kept.get(sample)
        if previous is None or (previous[0] and not misfiled):
            if previous is not None:
                problems["duplicate"].append(str(previous[1].rgb))
            kept[sample] = (misfiled, row)
        else:
            problems["duplicate"].append(str(row.rgb))
    problems["mismatch"] += [str(row.rgb) for misfiled, row in kept.values() if misfiled]
    return [row for _, row in kept.values()]


def _report(problems: dict[str, list[str]]) -> None:
    messages = {"no_depth": "CalD3r/MenD3s image(s) without a _Depth.png partner left out",
                "duplicate": "CalD3r/MenD3s image(s) duplicating a sample already read, ignored",
                "mismatch": "CalD3r/MenD3s image(s) whose <Emotion> folder disagrees with the label in "
                            "their name (the name's label is used)",
                "ignored": "file(s) with unexpected names in CalD3r/MenD3s RGB folders ignored"}
    for key, text in messages.items():
        if problems[key]:
            warn(f"{len(problems[key])} {text} (e.g. {problems[key][0]})")


def rows(data_root: Path, options: Mapping[str, Any]) -> list[Row]:
    """The samples selected by ``options`` (see the module docstring)."""
    options = merge_options("caldermends", options, DEFAULTS, CHOICES)
    root = resolve_root(data_root, options["layout"],
                        lambda folder: any(child_folder(folder, db) for db in DATABASES), "CalD3r/MenD3s", LAYOUT)
    wanted = DATABASES if options["databases"] == "both" else (options["databases"],)
    problems: dict[str, list[str]] = {"no_depth": [], "duplicate": [], "mismatch": [], "ignored": []}
    candidates: list[tuple[Key, bool, Row]] = []
    for name in wanted:
        base = child_folder(root, name)
        if base is None:
            if options["databases"] != "both":
                raise DataError(f"missing {root / name}; expected layout: {LAYOUT}")
            warn(f"no {name} folder under {root}; using the other database only")
            continue
        candidates += _database_rows(base, name, data_root, options, problems)
    found = _unique(candidates, problems)
    _report(problems)
    if not found:
        raise DataError(f"no CalD3r/MenD3s RGB-D image pairs found under {root}; expected layout: {LAYOUT}")
    return found


def load(data_root: Path, options: Mapping[str, Any]) -> FERData:
    """CalD3rMenD3s as FERData (the loader named by the ``caldermends`` DatasetSpec)."""
    options = merge_options("caldermends", options, DEFAULTS, CHOICES)
    return to_ferdata(rows(data_root, options), "caldermends", data_root, class_set(options["classes"], "surprise"))
