"""``ckplus`` / ``ckplus8``: the Extended Cohn-Kanade dataset (Lucey et al. 2010), posed sequences
that go from a neutral first frame to the expression's peak in the last frame (datasets.md §5).

Only the 327 sequences with an ``Emotion`` file are labelled (§5.1/§5.2). Emotion codes (§1):
0 neutral, 1 anger, 2 contempt, 3 disgust, 4 fear, 5 happy, 6 sadness, 7 surprise, mapped onto
ferbench's canonical names and order.

Classes. ``ckplus`` (default) has ferbench's 7 basic classes, neutral + the six basic expressions:
contempt is left out because it is not a basic expression, it is the rarest class (18 sequences)
and the 7-basic set is the one shared with the other datasets (RAF-DB, AffectNet-7, FERPlus without
contempt), so a model's classes line up across datasets. ``ckplus8`` adds contempt (8 classes).
The class set is a second dataset rather than an option because a dataset's classes are declared in
its spec (the runner checks the loaded classes against it). The other common CK+ class set, the six
basic expressions + contempt without neutral (CK+48, Emotion-FAN, §5.3), is ``ckplus8`` with
``dataset.neutral_frames=0``: neutral then has no samples (never a target, so it does not count in
mean class accuracy).

Samples (the deep-FER convention of §5.3): the last ``last_frames`` frames (up to the frame the
Emotion file names, the peak) of each labelled sequence get the sequence's label, and its first
``neutral_frames`` frames are labelled neutral (frames already among the last ones are not reused).
Defaults 3 and 1: the last 3 frames are what CK+48 and most deep-FER papers use (§5.3) and the first
frame as neutral is the public-iterator convention that gives the neutral class its samples. A
sequence of a class the dataset leaves out (contempt in ``ckplus``) is left out entirely, its
neutral frame too. Sample ids are the frame paths relative to the data root
(``cohn-kanade-images/S005/001/S005_001_00000011.png``); subjects are ``Sxxx``.

Protocols: ``subject-10fold`` (default): 10-fold cross-validation grouped by subject (no subject in
two folds; class-stratified by scikit-learn's StratifiedGroupKFold with the protocol's fixed seed),
as the deep-FER papers do (§5.3). ``emotion-fan-10fold``: Emotion-FAN's published fold file (a
``predefined`` protocol): the subjects with a labelled sequence, sorted by id, fold k = every 10th
subject from the k-th. Subjects are ranked over the sequences of every class before ``ckplus`` leaves
contempt out, so a subject is in the same fold on ``ckplus`` and ``ckplus8`` (``ckplus`` only loses
the contempt sequences; ranking after the filter would drop the 12 contempt-only subjects and move 7
others to another fold). Emotion-FAN's own 327 sequences are ``ckplus8`` with ``neutral_frames=0``.
The CK+ paper's leave-one-subject-out baseline is not offered (one fold per subject).

Layouts (``dataset.layout``: ``auto`` tries them in this order, or name one):

* ``official`` - ``cohn-kanade-images/Sxxx/nnn/Sxxx_nnn_%08d.png`` and
  ``Emotion/Sxxx/nnn/Sxxx_nnn_%08d_emotion.txt`` (one float such as ``   3.0000000e+00``), in the
  data root or one folder below it (as the archives unpack: ``extended-cohn-kanade-images/`` and
  ``Emotion_labels/``). Landmarks and FACS files are not needed. If a sequence's image folder is
  missing, its frame names are built from the label file so ``ferbench data check`` lists them.
* ``ck48`` - CK+48 (§5.3): ``<class>/Sxxx_nnn_<frame>.png`` 48x48 crops of the last 3 frames, class
  folders anger, contempt, disgust, fear, happy, sadness, surprise, in the data root or in ``CK+48/``.
  Subjects come from the file names. It holds no neutral frames (with ``neutral_frames`` > 0 a
  warning says neutral stays empty) and at most 3 frames per sequence.

Options (``--set dataset.KEY=VALUE``): ``layout`` (``auto``), ``last_frames`` (3, >= 1),
``neutral_frames`` (1, >= 0; 0 disables neutral samples).

Data quirks: CRLF or no final newline in emotion files; grayscale (most) and colour (some) frames,
read as RGB; an unreadable frame is left out of every split and reported; a second emotion file in a
sequence folder, or a CK+48 file name in two class folders, keeps the first (one warning); a missing
``Emotion`` or image folder is an error naming the expected layout.
"""
from __future__ import annotations

from typing import Callable

from ferbench import hookimpl
from ferbench.emotions import BASIC7, BASIC8
from ferbench.specs import DatasetSpec, ProtocolSpec

PROTOCOLS = {
    "subject-10fold": ProtocolSpec("subject-10fold", "subject_kfold",
                                   "10-fold cross-validation, subject-independent (folds grouped by subject Sxxx)",
                                   folds=10),
    "emotion-fan-10fold": ProtocolSpec("emotion-fan-10fold", "predefined",
                                       "Emotion-FAN's published 10 folds: subjects sorted by id, fold k gets "
                                       "every 10th subject, ranked over all labelled sequences (use ckplus8 "
                                       "with neutral_frames=0 for its 327 sequences)", folds=10),
}
OPTIONS = {"layout": "auto", "last_frames": 3, "neutral_frames": 1}
CHOICES = {"layout": ("auto", "official", "ck48")}
#: The layouts read, by name (shown in errors and by `ferbench datasets`).
LAYOUTS = {
    "official": "cohn-kanade-images/Sxxx/nnn/Sxxx_nnn_%08d.png + Emotion/Sxxx/nnn/*_emotion.txt "
                "(in the data root or one folder below)",
    "ck48": "<class>/Sxxx_nnn_<frame>.png with class folders anger, contempt, disgust, fear, happy, sadness, "
            "surprise (in the data root or in CK+48/)",
}
LAYOUT_TEXT = "; ".join(f"{name}: {text}" for name, text in LAYOUTS.items())
HOMEPAGE = "https://jeffcohn.net/wp-content/uploads/2020/04/CK-AgreementForm.pdf"  # access form, §5.3
#: Counts with the default options: 327 labelled sequences x 3 last frames (§5.2: CK+48's 981 images)
#: + one neutral first frame per sequence used.
PEAK_COUNTS = {"anger": 135, "disgust": 177, "fear": 75, "happiness": 207, "sadness": 84, "surprise": 249,
               "contempt": 54}


def _spec(name: str, classes: tuple[str, ...], loader: str, what: str) -> DatasetSpec:
    sequences = sum(PEAK_COUNTS[c] for c in classes if c != "neutral") // 3
    counts = {c: sequences if c == "neutral" else PEAK_COUNTS[c] for c in classes}
    return DatasetSpec(
        name=name, loader=f"ferbench_plugins.ckplus.dataset:{loader}", classes=classes, protocols=PROTOCOLS,
        default_protocol="subject-10fold",
        description=f"CK+ posed sequences, {what}; last 3 frames + the first as neutral",
        options=OPTIONS, option_choices=CHOICES, homepage=HOMEPAGE,
        layouts=LAYOUT_TEXT, reference_counts={"all": counts},
    )


@hookimpl
def register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    register(_spec("ckplus", BASIC7, "load7", "neutral + 6 basic (contempt left out)"))
    register(_spec("ckplus8", BASIC8, "load8", "neutral + 6 basic + contempt"))
