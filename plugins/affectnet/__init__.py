"""``affectnet7`` / ``affectnet8``: the manually annotated part of AffectNet (Mollahosseini et al. 2017).

Both datasets share one loader (``dataset.py``); they differ only in their classes: AffectNet-8 uses
the native codes 0-7, AffectNet-7 drops 7 Contempt (datasets.md §4.4). Native codes (§1, §4.1):
0 Neutral, 1 Happiness, 2 Sadness, 3 Surprise, 4 Fear, 5 Disgust, 6 Anger, 7 Contempt, mapped onto
ferbench's canonical order (neutral, happiness, surprise, sadness, anger, disgust, fear[, contempt]);
8 None, 9 Uncertain and 10 No-Face are left out, as all classification work does (§4.1). The
automatically annotated images are not read (§4.1).

Protocol ``official``: train = the training set, test = the validation set (the test set was never
released, so papers report on the balanced validation set: 500 images per class, §4.1/§4.3; the npy
release has 499 contempt images, §4.2). ``ferbench data check`` prints the counts beside the
reference counts of §4.3 (train, csv release: 283,901 images for -7, 287,651 for -8; PF-ViT quotes
287,568 for -8) and 500 per class for the test set.

Balanced sampling: the AffectNet results in the papers are trained with inverse-class-frequency
sampling (DAN, POSTER, POSTER V2: ``ImbalancedDatasetSampler``, weights 1/class count, drawn with
replacement, one epoch = training-set size, §4.5; MIMIC: "a balanced sample strategy"). ferbench's
engine does exactly this with ``--set train.balanced_sampling=true`` (off by default for every
dataset); set it in a run to compare with those papers. The test set is balanced, so accuracy equals
mean class accuracy there.

Layouts (``dataset.layout``: ``auto`` tries them in this order, or name one):

* ``csv`` - the original release (§4.1): ``Manually_Annotated_file_lists/training.csv`` and
  ``validation.csv`` (also accepted directly in the data root) with the columns
  ``subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,valence,arousal``;
  a header row is used when its first field is ``subDirectory_filePath`` (the sources disagree on
  whether validation.csv has one), and images under ``Manually_Annotated_Images/``. Sample ids:
  ``Manually_Annotated_Images/<subDirectory_filePath>``.
* ``npy`` - the newer release (§4.2): ``train_set/`` and ``val_set/`` (or POSTER's ``valid_set/``,
  §4.7) with ``images/<n>.jpg`` and ``annotations/<n>_exp.npy`` (the code, stored as a number or a
  string); the other annotations (valence, arousal, landmarks) are not needed. This also covers DAN's
  and POSTER's inputs, which are generated from it (§4.7). Ids: ``train_set/images/<n>.jpg``.
* ``imagefolder`` - re-packaged class-folder trees (§4.7): ``train/<class>/`` plus the first present
  of ``val/`` (DAN), ``valid/`` (POSTER V2 7-class), ``validation/``, ``test/`` (FMAE, POSTER V2
  8-class) as the test set. ``<class>`` is a native code ``0``-``7`` (DAN, FMAE: they copy the
  native codes) or an emotion name in any case (HSEmotion: Neutral, Happiness, ...; also happy, sad,
  angry ...); folders ``8``-``10``/None/Uncertain are skipped. Ids: ``train/3/<n>.jpg``.

Options (``--set dataset.KEY=VALUE``):

* ``layout`` (``auto``): see above.
* ``crop`` (``face_box``): for the csv release, whose images are full web photos, crop each image to
  its face box ``img[y:y+h, x:x+w]`` (clipped to the image) as the reference readers do (HSEmotion,
  §4.1/§4.6); ``none`` keeps the whole photo. The npy and folder releases are already cropped faces,
  so the option does not apply to them. Rows without a usable box keep the whole image.

Data quirks: a duplicated image path keeps its first row (one warning); rows without an image path
are skipped; an unreadable image is left out of every split and reported; a missing label file or
image folder is an error naming the expected layout.
"""
from __future__ import annotations

from typing import Callable

from ferbench import hookimpl
from ferbench.emotions import BASIC7, BASIC8
from ferbench.specs import DatasetSpec, ProtocolSpec

PROTOCOLS = {
    "official": ProtocolSpec("official", "official",
                             "train on the training set, test on the balanced validation set (500 per class)"),
}
OPTIONS = {"layout": "auto", "crop": "face_box"}
CHOICES = {"layout": ("auto", "csv", "npy", "imagefolder"), "crop": ("face_box", "none")}
#: The layouts read, by name (shown in errors and by `ferbench datasets`).
LAYOUTS = {
    "csv": "Manually_Annotated_file_lists/{training,validation}.csv (or both csv files in the data root) "
           "+ Manually_Annotated_Images/<subDirectory_filePath>",
    "npy": "{train_set,val_set}/images/<n>.jpg + {train_set,val_set}/annotations/<n>_exp.npy",
    "imagefolder": "train/<class>/*.jpg + {val,valid,validation,test}/<class>/*.jpg, <class> a native "
                   "code 0-7 or an emotion name (Neutral, Happiness/happy, ...)",
}
LAYOUT_TEXT = "; ".join(f"{name}: {text}" for name, text in LAYOUTS.items())
#: Training-set counts of the csv release (datasets.md §4.3) and the 500-per-class validation set.
TRAIN_COUNTS = {"neutral": 74874, "happiness": 134415, "surprise": 14090, "sadness": 25459, "anger": 24882,
                "disgust": 3803, "fear": 6378, "contempt": 3750}


def _spec(name: str, classes: tuple[str, ...], loader: str, what: str) -> DatasetSpec:
    return DatasetSpec(
        name=name, loader=f"ferbench_plugins.affectnet.dataset:{loader}", classes=classes, protocols=PROTOCOLS,
        default_protocol="official", description=f"AffectNet manually annotated, {what}",
        options=OPTIONS, option_choices=CHOICES, homepage="https://mohammadmahoor.com/pages/databases/affectnet/",
        layouts=LAYOUT_TEXT,
        reference_counts={"train": {c: TRAIN_COUNTS[c] for c in classes}, "test": {c: 500 for c in classes}},
    )


@hookimpl
def register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    register(_spec("affectnet7", BASIC7, "load7", "7 basic classes (contempt left out)"))
    register(_spec("affectnet8", BASIC8, "load8", "7 basic classes + contempt"))
