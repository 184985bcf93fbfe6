"""``bu3dfe``: BU-3DFE, 100 subjects posing 6 expressions at 4 intensities plus neutral (2,500 samples).

Layout (datasets.md §6.2)::

    <root>/F0001/F0001_AN01WH_F2D.bmp          frontal texture (RGB; .png in some copies)
    <root>/F0001/F0001_AN01WH_F3D.wrl          cropped face mesh (VRML)
    <root>/F0001/F0001_AN01WH_F3D_depth.png    depth map rendered from the mesh (not in the release)

``<root>`` is the data root (layout ``flat``, the release's one folder per subject) or its one
sub-folder holding the subject folders, e.g. [ERAI]'s ``BU3DFE/Subjects/`` (layout ``nested``).

Depth: the release has meshes, not depth maps; 2D+3D works render them (datasets.md §6.3; the thesis
§3.1). The loader reads ``<name>_F3D_depth.png`` beside each mesh, the name [ERAI] writes, and
``ferbench bu3dfe-depth --data-root DIR`` renders missing ones with this package's orthographic
z-buffer (:mod:`.meshdepth`: nearer = brighter, background 0, 16-bit). [ERAI]'s own maps are
z-buffer values (nearer = darker): read those with ``invert_depth=true``.

Choices (dataset options):

* Label: the expression code after the subject id (AN, DI, FE, HA, SA, SU, NE; datasets.md §6.2)
  mapped to BASIC7. Subject id: the ``F0001``/``M0001`` prefix of the file name.
* ``classes``: 7 (default, thesis Table 3.4 "87.47, 7 classes" and its merged set) or 6 = without
  neutral (every other BU-3DFE work; thesis 88.78), with six classes (six model outputs).
* ``intensities``: ``all`` (default, as the thesis) or ``top2`` = levels 03 and 04 only (the
  literature's protocol, datasets.md §6.3); neutral (level 00) is kept with 7 classes.
* ``subject_subset``: 0 (default) keeps every subject; N > 0 keeps N subjects drawn with
  ``subset_seed`` (the literature's 60 of 100, which are never published, datasets.md §10 item 9).
* Of a ``.bmp`` and a ``.png`` texture of one sample the ``.bmp`` is used; the duplicate is counted
  in a warning. Samples without a depth map are left out with a warning; none at all is an error
  that names the converter.

Protocols:

* ``random-60-40`` (default): the thesis's text (§3.4, after CMANet/AFNet) "randomly select 60% of
  dataset for training and 40% for validating and then averaging the accuracies", made
  person-independent (60% of the subjects train, 40% test) and repeated 5 times (as many random splits
  as the thesis code's 60/40 loop). Not comparable to the thesis's numbers, which come from
  sample-level splits.
* ``sample-60-40``: the same split over samples, stratified by class, as the thesis's code splits
  (``train_test_split`` over samples); a person appears on both sides, so its scores are optimistic.
  This is the protocol comparable to the thesis's BU-3DFE numbers (Table 3.4: 88.78 with 6 classes,
  87.47 with 7). (The code's literature variant, 60 subjects then 10-fold over their *samples*, has no
  ferbench protocol.)
* ``subject-10fold``: 10-fold cross-validation grouped by subject. With ``classes=6
  intensities=top2 subject_subset=60`` it is one draw of the literature's protocol (60 subjects,
  10-fold, 720 samples; datasets.md §6.3).
* ``literature-60x10fold``: the literature's protocol itself (the other works of Table 3.4): it
  redraws 60 of the subjects 100 times and runs a person-independent 10-fold cross-validation over each
  draw (1,000 folds, numbered draw-major; pick some with ``--fold``); use it with ``classes=6
  intensities=top2``.

Normalisation: as on CalD3rMenD3s the thesis uses per-fold training statistics per modality; turn it
on with ``--set data.fold_statistics=true``.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ferbench.data import FERData
from ferbench.datafiles import merge_options, relative_id, subfolders, warn
from ferbench.errors import DataError, UsageError

from .common import Row, class_set, label_of, resolve_root, to_ferdata
from .options import BU3DFE as DEFAULTS
from .options import BU3DFE_CHOICES as CHOICES

CODES = {"AN": "anger", "DI": "disgust", "FE": "fear", "HA": "happiness", "SA": "sadness", "SU": "surprise",
         "NE": "neutral"}
SUBJECT = r"[FM]\d{4}"
LAYOUT = "<root>/F0001/F0001_AN01WH_F2D.bmp (or .png) + F0001_AN01WH_F3D_depth.png, one folder per subject"
_NAME = re.compile(rf"({SUBJECT})_(AN|DI|FE|HA|SA|SU|NE)(\d\d)([A-Z]{{2}})_F2D\.(bmp|png)", re.IGNORECASE)


def _textures(subject_dir: Path, duplicates: list[str]) -> dict[str, Path]:
    """``{sample stem: texture}`` of one subject folder; .bmp preferred over .png."""
    found: dict[str, Path] = {}
    for path in sorted(subject_dir.iterdir(), key=lambda p: (p.suffix.lower() != ".bmp", p.name)):
        if _NAME.fullmatch(path.name):
            stem = path.name[: -len("_F2D.bmp")]
            if stem in found:
                duplicates.append(str(path))
            else:
                found[stem] = path
    return found


def _wanted(code: str, level: str, options: Mapping[str, Any]) -> bool:
    if code == "NE":
        return True  # dropped by the class set when classes == 6
    return options["intensities"] == "all" or level in ("03", "04")


def _subset(found: list[Row], options: Mapping[str, Any]) -> list[Row]:
    count = options["subject_subset"]
    if not count:
        return found
    subjects = sorted({row.subject for row in found})
    if not 0 < count <= len(subjects):
        raise UsageError(f"dataset.subject_subset={count} but {len(subjects)} subjects were found")
    chosen = set(np.random.default_rng(options["subset_seed"]).choice(subjects, count, replace=False).tolist())
    return [row for row in found if row.subject in chosen]


def rows(data_root: Path, options: Mapping[str, Any]) -> list[Row]:
    """The samples selected by ``options`` (see the module docstring)."""
    options = merge_options("bu3dfe", options, DEFAULTS, CHOICES)
    root = resolve_root(data_root, options["layout"], lambda folder: bool(subfolders(folder, SUBJECT)), "BU-3DFE",
                        LAYOUT)
    mode = "png-invert" if options["invert_depth"] else "png"
    duplicates: list[str] = []
    no_depth: list[str] = []
    found: list[Row] = []
    for subject_dir in subfolders(root, SUBJECT):
        for stem, texture in _textures(subject_dir, duplicates).items():
            subject, code, level = stem[:5].upper(), stem[6:8].upper(), stem[8:10]
            if not _wanted(code, level, options):
                continue
            depth = subject_dir / f"{stem}_F3D_depth.png"
            if not depth.is_file():
                no_depth.append(str(depth))
                continue
            found.append(Row(id=relative_id(texture, data_root), label=label_of(CODES[code]), subject=subject,
                             rgb=texture, depth=depth, depth_mode=mode))
    if duplicates:
        warn(f"{len(duplicates)} BU-3DFE texture(s) present as both .bmp and .png; the .bmp is used "
             f"(e.g. {duplicates[0]} ignored)")
    hint = f"render them with `ferbench bu3dfe-depth --data-root {data_root}` (from the _F3D.wrl meshes)"
    if no_depth and not found:
        raise DataError(f"no BU-3DFE depth maps (<name>_F3D_depth.png) under {root}, e.g. missing "
                        f"{no_depth[0]}; {hint}")
    if no_depth:
        warn(f"{len(no_depth)} BU-3DFE sample(s) without a depth map left out (e.g. {no_depth[0]}); {hint}")
    if not found:
        raise DataError(f"no BU-3DFE textures (<subject>_<EX><level><race>_F2D.bmp) under {root}; "
                        f"expected layout: {LAYOUT}")
    return _subset(found, options)


def load(data_root: Path, options: Mapping[str, Any]) -> FERData:
    """BU-3DFE as FERData (the loader named by the ``bu3dfe`` DatasetSpec)."""
    options = merge_options("bu3dfe", options, DEFAULTS, CHOICES)
    return to_ferdata(rows(data_root, options), "bu3dfe", data_root, class_set(options["classes"], "neutral"))
