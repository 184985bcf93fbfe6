"""``synthfer``: ferbench's embedded synthetic FER dataset (no download, generated in seconds).

Procedurally rendered faces showing the seven basic expressions through mouth, brows and eyes, under
identity, pose, scale, lighting, occlusion and noise nuisances, with RAF-DB-like class imbalance,
subject ids, an aligned depth map per image and 3% label noise. See ``render.py`` for the model.

Defaults: 4000 faces of 48 subjects, ``difficulty`` 0.5 (nuisance magnitudes and the spread of
expression intensity at half the renderer's maximum; at 1.0 a ViT trained from scratch in a minute
stays at the majority class, while at 0.5 the ``tiny`` vit-baseline reaches ~57% mean class accuracy).
Protocol ``official`` puts every fifth subject in the test split.
"""
from __future__ import annotations

from typing import Callable

from ferbench import hookimpl
from ferbench.emotions import BASIC7
from ferbench.specs import DatasetSpec, ProtocolSpec

PROTOCOLS = {
    "official": ProtocolSpec("official", "official",
                             "fixed subject-independent split: every fifth subject is test (about 80/20)"),
    "subject-5fold": ProtocolSpec("subject-5fold", "subject_kfold", "5-fold, subject-independent", folds=5),
    "random-60-40": ProtocolSpec("random-60-40", "repeated_split",
                                 "60/40 person-independent random split, repeated 3 times",
                                 test_fraction=0.4, repeats=3),
}


@hookimpl
def register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    register(DatasetSpec(
        name="synthfer",
        loader="ferbench_plugins.synthfer.dataset:load",
        classes=BASIC7,
        protocols=PROTOCOLS,
        default_protocol="official",
        description="embedded synthetic faces (RGB + depth), no download",
        modalities=("rgb", "depth"),
        needs_data_root=False,
        options={"samples": 4000, "subjects": 48, "seed": 0, "label_noise": 0.03, "difficulty": 0.5},
    ))
