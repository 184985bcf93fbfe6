"""Focal, centre and island losses as registered, selectable losses (``loss.name``: focal, center, island).

The losses of the RGB-D thesis (seed 004 §2.2, §3.4, §3.7; its code's companion library
"Pytorch-Focal-Center-Island-Loss"), after Lin et al. (focal), Wen et al. (centre) and Cai et al.
(island). What each option means, the forms and the centre update rule are documented in
:mod:`.losses`. Centre-based losses need the method's embedding size: a method calls
``loss.set_feature_dim`` while it is built (``rgbd-fusion`` and ``vit-baseline`` do), or the user sets ``loss.feature_dim``.
"""
from __future__ import annotations

from typing import Callable

from ferbench import hookimpl
from ferbench.specs import LossSpec

_MODULE = "ferbench_plugins.focal_center_island.losses"

FOCAL_OPTIONS = {"alpha": 1.0, "gamma": 2.0, "class_weights": False}
CENTER_OPTIONS = {"class_weights": True, "lambda_center": 1e-2, "center_lr": 0.5, "center_update": "rule",
                  "feature_dim": 0}
ISLAND_OPTIONS = {**CENTER_OPTIONS, "lambda_island": 10.0, "form": "cai"}
CENTER_CHOICES = {"center_update": ("rule", "gradient")}
ISLAND_CHOICES = {**CENTER_CHOICES, "form": ("cai", "thesis")}


@hookimpl
def register_losses(register: Callable[[LossSpec], None]) -> None:
    register(LossSpec("focal", f"{_MODULE}:FocalLoss", options=FOCAL_OPTIONS,
                      description="focal loss alpha (1 - p_y)^gamma CE (optionally class-weighted alpha)"))
    register(LossSpec("center", f"{_MODULE}:CenterLoss", options=CENTER_OPTIONS, choices=CENTER_CHOICES,
                      description="CE + lambda_center * centre loss; class centres by their own SGD"))
    register(LossSpec("island", f"{_MODULE}:IslandLoss", options=ISLAND_OPTIONS, choices=ISLAND_CHOICES,
                      description="CE + centre + island (pairwise centre cosine) terms, Cai et al.'s or the "
                                  "thesis's weighting"))
