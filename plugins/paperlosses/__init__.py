"""Losses from the papers behind the built-in methods, selectable by any method through ``loss.name``.

- ``scl``: cross-entropy + supervised contrastive loss over two views (Khosla et al. 2020), as MIMIC's
  ablation uses it; ``mscl``: cross-entropy + MIMIC's mix-supervised contrastive loss
  (:mod:`.contrastive`, mixing in :mod:`.mixing`).
- ``pdls`` / ``f-pdls``: prior distribution label smoothing without / with the focal factor of the
  neural-resizer paper (:mod:`.prior_smoothing`).

Every option and its default is explained in the implementing module's docstring.
"""
from __future__ import annotations

from typing import Callable

from ferbench import hookimpl
from ferbench.specs import LossSpec
from ferbench_plugins.common.heads import PROJECTIONS as _PROJECTIONS

_CONTRASTIVE = {"weight": 0.1, "temperature": 0.07, "projection": "dense", "projection_dim": 128,
                "label_smoothing": 0.0}
_MIXING = {"mix_alpha": 1.0, "cutmix_prob": 0.5, "distance": "tv", "threshold": 0.5, "visual_similarity": "none",
           "similarity_threshold": 0.5, "contrast_set": "clean+mixed", "ce_on": "clean"}
_PRIORS = ("auto", "votes", "uniform")


@hookimpl
def register_losses(register: Callable[[LossSpec], None]) -> None:
    register(LossSpec("scl", "ferbench_plugins.paperlosses.contrastive:SupervisedContrastive",
                      options=_CONTRASTIVE, choices={"projection": _PROJECTIONS}, views=2,
                      description="cross-entropy + weight x supervised contrastive loss (Khosla et al.), two views"))
    register(LossSpec("mscl", "ferbench_plugins.paperlosses.contrastive:MixSupervisedContrastive",
                      options={**_CONTRASTIVE, **_MIXING}, views=2,
                      choices={"projection": _PROJECTIONS, "distance": ("tv", "l1", "l2"),
                               "visual_similarity": ("none", "cosine"), "contrast_set": ("clean+mixed", "mixed"),
                               "ce_on": ("clean", "mixed", "all")},
                      description="cross-entropy + weight x MIMIC's mix-supervised contrastive loss (Mixup/CutMix)"))
    register(LossSpec("pdls", "ferbench_plugins.paperlosses.prior_smoothing:pdls",
                      options={"alpha": 0.8, "prior": "auto"}, choices={"prior": _PRIORS},
                      description="prior distribution label smoothing (target alpha*onehot + (1-alpha)*prior row)"))
    register(LossSpec("f-pdls", "ferbench_plugins.paperlosses.prior_smoothing:focal_pdls",
                      options={"alpha": 0.8, "gamma": 2.0, "prior": "auto"}, choices={"prior": _PRIORS},
                      description="focal prior distribution label smoothing (Hwang et al., ICASSP 2022)"))
