"""``ferplus``: FER2013 images with Microsoft's FER+ crowd labels (10 votes per image).

Layouts (option ``layout``, where the images come from; ``auto`` prefers ``folders`` when PNGs are
there, then ``csv``):

- ``folders`` (datasets.md §3.3): ``FER2013Train/``, ``FER2013Valid/``, ``FER2013Test/``, each with the
  PNGs written by Microsoft's ``generate_training_data.py`` and its header-less ``label.csv``
  (``<png>,"(0, 0, 48, 48)",<10 votes>``; rows without the face-box field are read too), in the data
  root or in ``data/`` inside it (a clone of the FERPlus repository).
- ``csv`` (§3.1, §3.2): ``fer2013.csv`` (Kaggle; ``icml_face_data.csv`` is accepted too) and
  ``fer2013new.csv``, in the data root or ``fer2013/`` inside it, joined by row position. The 48x48
  grayscale pixel strings are decoded by the pixel-cache reader (a malformed string makes that image
  unreadable: skipped and reported, never fatal). The two files must have the same number of rows
  and the same ``Usage`` per row (else a DataError: the files do not belong together).

Vote source (option ``votes``, recorded with every run): Microsoft ships the votes twice and the two
files disagree. ``label.csv`` (default): the ``FER2013{Train,Valid,Test}/label.csv`` files of the
repository's ``data/`` folder, which its own training code reads; ``fer2013new.csv``: the file its
README describes. 1,601 of the 35,710 named images have other votes in the two, so the majority rule
keeps 25,045 / 3,191 / 3,137 train / valid / test images with ``label.csv`` (§3.5) but 25,057 / 3,199 /
3,153 with ``fer2013new.csv``: runs with different vote sources are not comparable, and ``data check``
compares each with its own reference counts. Either vote file goes with either image layout, joined
by sample id: ``label.csv`` is looked for in the data root or ``data/`` in it, ``fer2013new.csv`` in
the data root or ``fer2013/`` in it (with csv images, a ``label.csv`` row naming an image that
``fer2013new.csv`` lacks is left out with a warning).

Sample ids are Microsoft's PNG paths ``FER2013Train/fer0000000.png`` in both layouts (relative to the
folder holding ``FER2013Train/``), so one copy read either way *with the same votes* gives the same
split manifest.

Rows dropped, as the reference tools do, with a count on stderr: rows with an empty ``Image name``
(173 in fer2013new.csv, all "not a face"; ``generate_training_data.py`` skips them, §3.2); a name
listed twice keeps its first row (warning; §3.2 lists four such names; Microsoft's script writes the
PNG of the last one, so the CSV layout may show the other copy of those four images).

Label modes (option ``label_mode``, rules of Microsoft's reference reader ``src/ferplus.py``, §3.4):

- ``majority`` (default): vote counts of 1 are zeroed first ("outlier removal"); the top class is
  kept only if it holds strictly more than half of the remaining votes, unknown and NF votes included
  in that total. Otherwise (votes at or below the threshold; ties can never pass it) the image becomes
  "unknown" and is dropped, as are images whose winner is unknown or NF. An image with no vote
  left is dropped. Gives 25,045 / 3,191 / 3,137 images (§3.5).
- ``plurality``: the raw votes' argmax without outlier removal; ties go to the first class in the
  order neutral .. contempt, unknown, NF (the "plain argmax" of §3.5: 28,385 / 3,555 / 3,545), or drop
  the image with ``plurality_ties: drop``. Unknown/NF winners are dropped.
- ``probability``: soft targets as Microsoft's ``probability``/``crossentropy`` modes build them
  (votes of 1 zeroed; the top classes, all classes tied at a level together, are taken until 75% of
  the votes are covered, stopping at 3 classes or when unknown/NF ties in; the image is dropped when
  half or less of the votes are covered, more than 3 classes were taken, or unknown/NF wins); the
  8 emotion values renormalised become ``FERData.soft_labels`` (used by methods with
  ``loss.soft_targets``), and the hard label is their argmax (first class on ties).

``eval_label_mode`` (default ``auto``) is the rule for the evaluated parts (val and test): ``auto``
uses ``majority`` for ``label_mode: probability`` (Microsoft's ``train.py`` scores validation and test
with the majority reader, so numbers stay comparable to the paper) and ``label_mode`` otherwise;
any mode can be named explicitly. Training rows always follow ``label_mode``.

``classes`` (default 8, BASIC8 with contempt, as Microsoft): with ``7``, images whose label is
contempt are dropped everywhere (the 7-class variant of §3.6, which drops index 7 after labelling:
the label rule still sees the contempt votes), soft targets lose their contempt share
(renormalised) and the class list is BASIC7 (models get 7 outputs).
Protocol ``official``: Microsoft's FER2013Train (train) / FER2013Valid (``split == "val"``) /
FER2013Test (test). With ``train_on_valid: true`` the valid part is trained on (the Train+Valid
training set of several papers, §3.6) and there is no val part. Reference counts (``data check``): the
majority rule's, per vote source (``label.csv``: §3.5; ``fer2013new.csv``: counted from the file of
Microsoft's repository at commit ae2128a with this plugin's reader).
"""
from __future__ import annotations

from typing import Callable

from ferbench import hookimpl
from ferbench.emotions import BASIC8
from ferbench.specs import DatasetSpec, ProtocolSpec

OPTIONS = {"layout": "auto", "votes": "label.csv", "label_mode": "majority", "eval_label_mode": "auto",
           "classes": 8, "plurality_ties": "first", "train_on_valid": False}
OPTION_CHOICES = {"layout": ("auto", "folders", "csv"),
                  "votes": ("label.csv", "fer2013new.csv"),
                  "label_mode": ("majority", "plurality", "probability"),
                  "eval_label_mode": ("auto", "majority", "plurality", "probability"),
                  "classes": (8, 7),
                  "plurality_ties": ("first", "drop")}

LAYOUTS = ("folders: FER2013Train/, FER2013Valid/, FER2013Test/ each with PNGs and label.csv "
           "(Microsoft generate_training_data.py output; also under data/); "
           "csv: fer2013.csv + fer2013new.csv (also under fer2013/)")

_MAJORITY = {  # majority-rule counts per vote source and split, in BASIC8 order
    "label.csv": {  # datasets.md §3.5, "MS-majority" columns
        "train": (8733, 7284, 3136, 3022, 2098, 116, 536, 120),
        "val": (1180, 862, 411, 348, 289, 25, 60, 16),
        "test": (1083, 892, 394, 382, 269, 16, 86, 15),
    },
    "fer2013new.csv": {  # counted from microsoft/FERPlus@ae2128a fer2013new.csv (first row of a repeated name)
        "train": (8739, 7287, 3149, 3013, 2099, 119, 532, 119),
        "val": (1182, 865, 415, 351, 287, 24, 62, 13),
        "test": (1090, 893, 396, 384, 273, 18, 83, 16),
    },
}
REFERENCE_COUNTS = {votes: {split: dict(zip(BASIC8, counts)) for split, counts in parts.items()}
                    for votes, parts in _MAJORITY.items()}
#: Board titles of the leaderboard: option -> value -> words.
OPTION_LABELS = {
    "classes": {8: "8 classes", 7: "7 classes"},
    "votes": {"label.csv": "votes of label.csv", "fer2013new.csv": "votes of fer2013new.csv"},
    "label_mode": {"majority": "majority rule", "plurality": "plurality rule", "probability": "vote distributions"},
    "eval_label_mode": {"majority": "majority-rule test labels", "plurality": "plurality-rule test labels",
                        "probability": "probability-rule test labels", "auto": "test labels by the label mode"},
    "train_on_valid": {False: "train only", True: "train + valid"},
    "plurality_ties": {"first": "ties to the first class", "drop": "ties dropped"},
}

PROTOCOLS = {"official": ProtocolSpec("official", "official",
                                      "Microsoft's split: FER2013Train / FER2013Valid (val) / FER2013Test")}


@hookimpl
def register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    common = dict(protocols=PROTOCOLS, default_protocol="official", homepage="https://github.com/microsoft/FERPlus",
                  layouts=LAYOUTS)
    register(DatasetSpec(
        name="ferplus", loader="ferbench_plugins.ferplus.dataset:load", classes=BASIC8,
        description="FER2013 48x48 grayscale faces relabelled by 10 annotators (FER+), 8 classes",
        options=OPTIONS, option_choices=OPTION_CHOICES, reference_counts=REFERENCE_COUNTS["label.csv"],
        reference_counts_by={"votes": REFERENCE_COUNTS}, option_labels=OPTION_LABELS, **common))
