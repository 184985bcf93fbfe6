"""``rafdb``: RAF-DB basic-emotion subset (7 classes), official 12,271 / 3,068 train/test split.

Labels (datasets.md §1, §2.2): native codes 1..7 = Surprise, Fear, Disgust, Happiness, Sadness,
Anger, Neutral, mapped onto ferbench's BASIC7 order (neutral, happiness, surprise, sadness, anger,
disgust, fear). There are no identities and no official validation part (§2.4), so protocol
``official`` has train and test only (``train.selection=val`` carves a stratified part of train).

Layouts read (option ``layout``; ``auto`` tries them in this order, each under the data root and under
``basic/`` or ``raf-basic/`` inside it):

- ``official`` (§2.1, §2.2): ``EmoLabel/list_patition_label.txt`` (``<name> <code>`` per line; the
  correctly spelled ``list_partition_label.txt`` is accepted too) with ``Image/aligned/<stem>_aligned.jpg``
  (``image_variant: aligned``, the default used by DAN/POSTER/SCN/EAC) or ``Image/original/<name>``
  (``image_variant: original``). The split is the name prefix ``train_`` / ``test_``.
- ``apvit`` (§2.7): ``EmoLabel/train.txt`` + ``EmoLabel/test.txt`` (same two columns, 1-based codes;
  ``_aligned`` is stripped from names as APViT does) with images in ``Image/aligned_224/``.
- ``class_folders`` (§2.7): class folders named by the native code ``1``..``7`` under ``train/`` with
  ``valid/`` or ``test/`` (POSTER V2 users), or under ``train_set/`` with ``val_set/``. The second folder
  holds the official test set, so its images are ``split == "test"``.

``image_variant: original`` exists only in the official layout (a DataError says so otherwise).

Sample ids are image paths relative to the data root (e.g. ``Image/aligned/train_00001_aligned.jpg``).
A name listed twice in a label file keeps its first line (warning on stderr). Unreadable images are
skipped through the pixel cache; a missing image is reported by ``ferbench data check`` and skipped in runs.
Reference counts: §2.3 (counted from the official label file).
"""
from __future__ import annotations

from typing import Callable

from ferbench import hookimpl
from ferbench.emotions import BASIC7
from ferbench.specs import DatasetSpec, ProtocolSpec

#: Native RAF-DB code -> canonical class name (datasets.md §1).
NATIVE_CODES: dict[int, str] = {1: "surprise", 2: "fear", 3: "disgust", 4: "happiness", 5: "sadness",
                                6: "anger", 7: "neutral"}

OPTIONS = {"layout": "auto", "image_variant": "aligned"}
OPTION_CHOICES = {"layout": ("auto", "official", "apvit", "class_folders"),
                  "image_variant": ("aligned", "original")}

LAYOUTS = ("official: EmoLabel/list_patition_label.txt + Image/aligned/<stem>_aligned.jpg (or Image/original/); "
           "apvit: EmoLabel/train.txt + EmoLabel/test.txt + Image/aligned_224/; "
           "class_folders: train/1..7/ + valid/1..7/ (or test/), or train_set/1..7/ + val_set/1..7/")

_TRAIN = {"surprise": 1290, "fear": 281, "disgust": 717, "happiness": 4772, "sadness": 1982, "anger": 705,
          "neutral": 2524}
_TEST = {"surprise": 329, "fear": 74, "disgust": 160, "happiness": 1185, "sadness": 478, "anger": 162,
         "neutral": 680}
REFERENCE_COUNTS = {split: {name: counts[name] for name in BASIC7} for split, counts in
                    (("train", _TRAIN), ("test", _TEST))}

PROTOCOLS = {"official": ProtocolSpec("official", "official",
                                      "official split: 12,271 train / 3,068 test images (no validation part)")}


@hookimpl
def register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    register(DatasetSpec(
        name="rafdb",
        loader="ferbench_plugins.rafdb.dataset:load",
        classes=BASIC7,
        protocols=PROTOCOLS,
        default_protocol="official",
        description="RAF-DB basic: in-the-wild faces, 7 basic expressions (aligned 100x100 RGB)",
        options=OPTIONS,
        option_choices=OPTION_CHOICES,
        homepage="http://www.whdeng.cn/RAF/model1.html",
        layouts=LAYOUTS,
        reference_counts=REFERENCE_COUNTS,
    ))
