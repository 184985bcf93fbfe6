"""``bosphorus``: the Bosphorus 3D face database, 105 subjects; RGB ``.png`` + range scan ``.bnt``.

Layout (datasets.md §7.1)::

    <root>/bs000/bs000_E_ANGER_0.png   bs000_E_ANGER_0.bnt     (emotion scans)
    <root>/bs000/bs000_N_N_0.png       bs000_N_N_0.bnt         (neutral scans, several per subject)
    <root>/bs000/bs000_LFAU_12_0.png   bs000_UFAU_2_0.png ...  (action-unit scans)

``<root>`` is the data root (layout ``flat``) or its one sub-folder holding the ``bsNNN`` folders
(layout ``nested``). Other scans (poses ``YR``/``PR``/``CR``, occlusions ``O``, other AUs) are not
FER samples and are skipped.

Choices (dataset options):

* Labels (datasets.md §1, §7.2): ``N_N`` = neutral; ``E_ANGER``, ``E_DISGUST``, ``E_FEAR``,
  ``E_HAPPY``, ``E_SADNESS``, ``E_SURPRISE`` = the six emotions; 7 classes in BASIC7 order.
* ``au_mapping``: false (default: official emotion labels only); true adds the action-unit scans
  the thesis converts (Table 3.8, "following CK+ in a more conservative way"): LFAU_24 (lip presser)
  = anger, LFAU_9 (nose wrinkler) = disgust, LFAU_12 (lip corner puller) = happiness, LFAU_15 (lip
  corner depressor) = sadness, UFAU_2 (outer brow raiser) = surprise, UFAU_1 (inner brow raiser) =
  fear. Only these exact codes, as in Bosphorus_Initializer.py. Project-specific, not official.
* ``neutral``: ``all`` (default) keeps every ``N_N`` scan; ``first`` keeps one per subject (the
  lowest scan index). The thesis code copies all neutral scans of a subject to one file name, so it
  ends with one per subject (its Bosphorus counts: 116 anger, 145 disgust, 101 fear, 182
  happiness, 98 neutral, 102 sadness, 158 surprise, with ``au_mapping``; Article/plot.py).
* Depth: rendered from the ``.bnt`` z plane when pixels are cached (:mod:`.bnt`: nearer =
  brighter, background 0). A scan whose ``.bnt`` is missing is left out with a warning; an
  unreadable ``.bnt`` or ``.png`` is skipped like any unreadable image.
* ``crop_rgb``: true (default) crops the 1600x1200 RGB image to the depth image's window on the
  ``.bnt`` grid, placed by the scan's texture coordinates (:func:`.bnt.crop_to_depth`), so RGB and
  depth are pixel-aligned, as thesis §3.10 says ("the RGB images are cropped accordingly to the depth
  maps"); false keeps the whole image (the face then fills a different part of each modality). The
  thesis's code instead resized the whole image to 512x512 and blacked out the pixels where its own
  re-gridded depth map was empty; that masking is not reproduced.
* Subject id: the ``bsNNN`` folder prefix of the file name. (The thesis code's merged set used
  ``bsNNN_<scan index>``, which splits a person in two; ferbench does not.)

Protocol: no official FER split exists and the thesis evaluates Bosphorus only inside its merged set
(datasets.md §7.2 advises subject-grouped k-fold). ``subject-10fold`` (default) is 10-fold
cross-validation grouped by subject (about 10 persons per test fold); ``subject-5fold`` the 5-fold
variant used for CalD3rMenD3s.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from ferbench.data import FERData
from ferbench.datafiles import merge_options, relative_id, subfolders, warn
from ferbench.errors import DataError

from .common import Row, label_of, resolve_root, to_ferdata
from .options import BOSPHORUS as DEFAULTS
from .options import BOSPHORUS_CHOICES as CHOICES

SUBJECT = r"bs\d{3}"
EMOTIONS = {"ANGER": "anger", "DISGUST": "disgust", "FEAR": "fear", "HAPPY": "happiness",
            "SADNESS": "sadness", "SURPRISE": "surprise"}
#: The thesis's action-unit conversion (Table 3.8): (category, AU number) -> class.
AU_CLASSES = {("LFAU", "24"): "anger", ("LFAU", "9"): "disgust", ("LFAU", "12"): "happiness",
              ("LFAU", "15"): "sadness", ("UFAU", "2"): "surprise", ("UFAU", "1"): "fear"}
LAYOUT = "<root>/bs000/bs000_E_ANGER_0.png + bs000_E_ANGER_0.bnt (and N_N_k, LFAU_n_k, UFAU_n_k scans)"


def class_of(stem: str, au_mapping: bool) -> str | None:
    """Canonical class of a scan name such as ``bs000_E_ANGER_0``; None for a non-FER scan."""
    parts = stem.split("_")
    if len(parts) != 4 or not parts[3].isdigit():
        return None
    _, category, code, _ = (part.upper() for part in parts)
    if category == "N" and code == "N":
        return "neutral"
    if category == "E":
        return EMOTIONS.get(code)
    return AU_CLASSES.get((category, code)) if au_mapping else None


def _first_neutral_only(found: list[tuple[int, Row]]) -> list[Row]:
    """One neutral scan per subject: the lowest scan index."""
    neutral = label_of("neutral")
    first: dict[str, tuple[int, Row]] = {}
    for index, row in found:
        if row.label == neutral and (row.subject not in first or index < first[row.subject][0]):
            first[row.subject] = (index, row)
    kept = {id(row) for _, row in first.values()}
    return [row for _, row in found if row.label != neutral or id(row) in kept]


def rows(data_root: Path, options: Mapping[str, Any]) -> list[Row]:
    """The samples selected by ``options`` (see the module docstring)."""
    options = merge_options("bosphorus", options, DEFAULTS, CHOICES)
    root = resolve_root(data_root, options["layout"], lambda folder: bool(subfolders(folder, SUBJECT)),
                        "Bosphorus", LAYOUT)
    found: list[tuple[int, Row]] = []
    no_depth: list[str] = []
    for subject_dir in subfolders(root, SUBJECT):
        for path in sorted(p for p in subject_dir.iterdir() if p.suffix.lower() == ".png"):
            name = class_of(path.stem, options["au_mapping"])
            if name is None:
                continue
            depth = path.with_suffix(".bnt")
            if not depth.is_file():
                no_depth.append(str(path))
                continue
            row = Row(id=relative_id(path, data_root), label=label_of(name), subject=path.stem[:5].lower(), rgb=path,
                      depth=depth, depth_mode="bnt", rgb_mode="bnt-crop" if options["crop_rgb"] else "image")
            found.append((int(path.stem.split("_")[3]), row))
    if no_depth:
        warn(f"{len(no_depth)} Bosphorus scan(s) without a .bnt file left out (e.g. {no_depth[0]})")
    if not found:
        raise DataError(f"no labelled Bosphorus scans (.png + .bnt) under {root}; expected layout: {LAYOUT}")
    if options["neutral"] == "first":
        return _first_neutral_only(found)
    return [row for _, row in found]


def load(data_root: Path, options: Mapping[str, Any]) -> FERData:
    """Bosphorus as FERData (the loader named by the ``bosphorus`` DatasetSpec)."""
    return to_ferdata(rows(data_root, options), "bosphorus", data_root)
