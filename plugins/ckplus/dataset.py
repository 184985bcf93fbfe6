"""Loads CK+ as :class:`~ferbench.data.FERData`: frames of the labelled sequences; see the package
docstring for the layouts, options and choices."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ferbench.data import FERData
from ferbench.datafiles import image_files, merge_options, read_lines, subfolders, warn
from ferbench.emotions import BASIC7, BASIC8
from ferbench.errors import DataError, UsageError
from ferbench_plugins.common.image_datasets import SampleTable, emotion_from_word

from . import CHOICES, LAYOUT_TEXT, LAYOUTS, OPTIONS

#: CK+ Emotion-file codes -> canonical names (datasets.md §1, §5.1).
CK_CODES = {0: "neutral", 1: "anger", 2: "contempt", 3: "disgust", 4: "fear", 5: "happiness", 6: "sadness",
            7: "surprise"}
#: ``S005_001_00000011`` (+ ``_emotion`` for label files): subject, sequence, frame.
FRAME = re.compile(r"^(S\d+)_(\d+)_(\d+)(?:_emotion)?$", re.IGNORECASE)
IMAGES, EMOTION, CK48 = "cohn-kanade-images", "Emotion", "CK+48"


def load7(data_root: Path, options: Mapping[str, Any]) -> FERData:
    """``ckplus``: neutral + the six basic expressions (contempt sequences left out)."""
    return _load(data_root, options, BASIC7, "ckplus")


def load8(data_root: Path, options: Mapping[str, Any]) -> FERData:
    """``ckplus8``: neutral + the six basic expressions + contempt."""
    return _load(data_root, options, BASIC8, "ckplus8")


def _load(root: Path, options: Mapping[str, Any], classes: tuple[str, ...], name: str) -> FERData:
    opts = merge_options(name, options, OPTIONS, CHOICES)
    last, neutral = _count_option(opts, "last_frames", 1), _count_option(opts, "neutral_frames", 0)
    layout = detect_layout(root, str(opts["layout"]))
    table = SampleTable(root)
    if layout == "official":
        label_files, labelled = read_official(root, table, set(classes), last, neutral)
    else:
        label_files, labelled = read_ck48(root, table, set(classes), last, neutral)
    data = table.to_data(classes, name, label_files, (layout,), with_subjects=True)
    data.fold = emotion_fan_folds(data.subjects, labelled)
    return data


def emotion_fan_folds(subjects: np.ndarray, labelled: set[str], folds: int = 10) -> np.ndarray:
    """Emotion-FAN's published assignment (datasets.md §5.3): the subjects with a labelled sequence of
    any class (``labelled``, ranked before a class is left out, so ``ckplus`` keeps ``ckplus8``'s folds)
    sorted by id; fold k gets every ``folds``-th subject starting at the k-th."""
    rank = {subject: index for index, subject in enumerate(sorted(labelled))}
    return np.asarray([rank[subject] % folds for subject in subjects.tolist()], dtype=np.int64)


def _count_option(options: Mapping[str, Any], key: str, low: int) -> int:
    value = options[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise UsageError(f"invalid value {value!r} for dataset.{key}: expected an integer >= {low}")
    return value


def _official_dirs(root: Path) -> tuple[Path | None, Path | None]:
    """``cohn-kanade-images`` and ``Emotion`` (None where absent) in the data root or one folder below
    it (the archives unpack as ``extended-cohn-kanade-images/cohn-kanade-images`` and
    ``Emotion_labels/Emotion``)."""
    found = []
    for name in (IMAGES, EMOTION):
        candidates = [root / name] + [folder / name for folder in subfolders(root)]
        found.append(next((c for c in candidates if c.is_dir()), None))
    return found[0], found[1]


def _ck48_dir(root: Path) -> Path | None:
    """The folder holding CK+48's class folders: the data root itself or ``CK+48/`` in it."""
    for folder in (root, root / CK48):
        if any(emotion_from_word(f.name) for f in subfolders(folder)):
            return folder
    return None


def detect_layout(root: Path, layout: str) -> str:
    """``layout`` itself (a valid choice), or with ``auto`` the first layout whose folders are present."""
    if layout != "auto":
        return layout
    if all(_official_dirs(root)):
        return "official"
    if _ck48_dir(root):
        return "ck48"
    raise DataError(f"no CK+ layout found in {root} (checked {root / IMAGES} and {root / EMOTION}, one folder "
                    f"deeper, {root}/<class> and {root / CK48}/<class>); expected one of: {LAYOUT_TEXT}")


def pick_frames(frames: list[Path], last: int, neutral: int) -> tuple[list[Path], list[Path]]:
    """(last ``last`` frames, first ``neutral`` frames not among them) of frames in temporal order."""
    peak = frames[-last:]
    return peak, [f for f in frames[:neutral] if f not in peak]


# ------------------------------------------------------------------------------------- official
def read_official(root: Path, table: SampleTable, classes: set[str], last: int, neutral: int
                  ) -> tuple[list[Path], set[str]]:
    """Every sequence with an ``Emotion/Sxxx/nnn/*_emotion.txt`` file: its last frames get the label,
    its first frames neutral (a sequence of a class not in ``classes`` is left out entirely). Returns
    the label files and the subjects with a labelled sequence of any class."""
    images, emotion = _official_dirs(root)
    if images is None or emotion is None:
        absent = IMAGES if images is None else EMOTION
        raise DataError(f"missing {root / absent} (nor in a folder below {root}); expected layout: "
                        f"{LAYOUTS['official']}")
    label_files, labelled, duplicates = [], set(), 0
    for subject in subfolders(emotion):
        for sequence in subfolders(subject):
            files = sorted(sequence.glob("*_emotion.txt"))
            if not files:
                continue  # an unlabelled sequence (266 of the 593 have no emotion label, §5.1)
            duplicates += len(files) - 1
            label_files.append(files[0])
            labelled.add(subject.name)
            name = _emotion_class(files[0])
            if name not in classes:
                continue
            frames = _frames(images / subject.name / sequence.name, files[0])
            peak, first = pick_frames(frames, last, neutral)
            for frame in peak:
                table.add(frame, name, subject=subject.name)
            for frame in first:
                table.add(frame, "neutral", subject=subject.name)
    if duplicates:
        warn(f"{duplicates} extra emotion file(s) in sequence folders under {emotion}: kept the first of each")
    if not label_files:
        raise DataError(f"no *_emotion.txt files under {emotion}; expected layout: {LAYOUTS['official']}")
    return label_files, labelled


def _emotion_class(path: Path) -> str:
    """The class in an emotion file: one float such as ``   3.0000000e+00`` (§5.1)."""
    lines = read_lines(path)
    try:
        value = float(lines[0].split()[0]) if lines else float("nan")
    except ValueError:
        value = float("nan")
    if not value.is_integer() or int(value) not in CK_CODES:
        shown = lines[0] if lines else "nothing"
        raise DataError(f"{path} holds {shown!r}, not an emotion code 0-7; expected one number such as 3.0000000e+00")
    return CK_CODES[int(value)]


def _frames(folder: Path, label_file: Path) -> list[Path]:
    """A sequence's frames in order up to the labelled (peak) frame. When the image folder is missing
    or empty, the names are built from the label file's frame number, so that the data check names
    the missing files."""
    match = FRAME.match(label_file.stem)
    peak = int(match.group(3)) if match else None
    numbered = sorted((int(m.group(3)), p) for p in image_files(folder) if (m := FRAME.match(p.stem)))
    frames = [p for number, p in numbered if peak is None or number <= peak]
    if frames:
        return frames
    if match is None:
        raise DataError(f"no frames in {folder} and no frame number in {label_file.name}; expected layout: "
                        f"{LAYOUTS['official']}")
    subject, sequence = match.group(1), match.group(2)
    return [folder / f"{subject}_{sequence}_{n:08d}.png" for n in range(1, peak + 1)]


# ----------------------------------------------------------------------------------------- CK+48
def read_ck48(root: Path, table: SampleTable, classes: set[str], last: int, neutral: int
              ) -> tuple[list[Path], set[str]]:
    """``<class>/Sxxx_nnn_<frame>.png``: the last ``last`` frames of each (subject, sequence) it holds.
    Returns no label files (the class folders are the labels) and the subjects of every class."""
    folder = _ck48_dir(root)
    if folder is None:
        raise DataError(f"no CK+48 class folders in {root} or {root / CK48}; expected layout: {LAYOUTS['ck48']}")
    sequences: dict[tuple[str, str], list[tuple[int, Path, str]]] = {}
    seen: set[str] = set()
    duplicates = 0
    for class_dir in subfolders(folder):
        name = emotion_from_word(class_dir.name)
        if name is None:
            raise DataError(f"class folder {class_dir} is not an emotion name; expected layout: {LAYOUTS['ck48']}")
        for image in image_files(class_dir):
            match = FRAME.match(image.stem)
            if match is None:
                raise DataError(f"cannot read the subject of {image}: CK+48 names are Sxxx_nnn_<frame>.png "
                                f"(e.g. S010_004_00000017.png)")
            if image.name in seen:
                duplicates += 1
                continue
            seen.add(image.name)
            subject, sequence, frame = match.group(1).upper(), match.group(2), int(match.group(3))
            sequences.setdefault((subject, sequence), []).append((frame, image, name))
    if duplicates:
        warn(f"{duplicates} duplicated file name(s) in the CK+48 class folders under {folder}: kept the first "
             "(class folders in name order)")
    for (subject, _), frames in sorted(sequences.items()):
        for _, image, name in sorted(frames)[-last:]:
            if name in classes:
                table.add(image, name, subject=subject)
    if neutral and "neutral" not in table.names:
        warn("CK+48 holds no neutral frames: class neutral stays empty (set dataset.neutral_frames=0 to "
             "silence this)")
    return [], {subject for subject, _ in sequences}
