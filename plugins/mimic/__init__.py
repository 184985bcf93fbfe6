"""``mimic``: MAE-pre-trained ViT fine-tuned with cross-entropy + mix-supervised contrastive loss.

MIMIC (Zhang, Guo, Peng, Kot, arXiv 2401.07245): a ViT-B/16 pre-trained on ImageNet-1k by masked image
modelling (timm ``vit_base_patch16_224.mae``, loaded through the ``mae-encoder`` weights adapter,
``model.weights_adapter``), a global-average-pooling classification head with a fresh norm (timm
``global_pool='avg'``: ``fc_norm`` and ``head`` start fresh, the pretrained final ``norm`` is dropped, as MAE
fine-tuning does), two augmented views per image, and the loss ``CE + 0.1 * MSCL`` with a dense projection
head (``loss.name: mscl``, see ``ferbench_plugins.paperlosses.contrastive`` for every MSCL choice).
Projection dimension 128 on RAF-DB and 512 on FERPlus (§IV-F, as dataset presets).

Stated optimisation (§IV-B): Adam, weight decay 5e-4, lr 1e-4, layer-wise lr decay 0.65, batch 64, 50 epochs
(RAF-DB, FERPlus), 10 epochs with class-balanced sampling on AffectNet-7. Choices where the paper is silent,
each a config key:

- schedule: MAE fine-tuning recipe, 5 warm-up epochs then cosine to 1e-6 (``optim.schedule``,
  ``optim.warmup_epochs``, ``optim.min_lr``); drop path 0.1 (ViT-B) / 0.2 (ViT-L), also the MAE recipe;
- augmentation: "two cropped patches per image following SimMIM": flip, zoom-in crops (scale 1-1.5 with
  translation 0.1), colour jitter 0.4, random erasing 0.25 (``data.augment``); 224 px inputs;
- the classifier head starts as in MAE fine-tuning (truncated normal, std 2e-5) when weights are loaded;
- supervised initialisation (Table II): the paper's "ImageNet-1k" supervised ViT-B/16 is taken as the public
  supervised ViT-B/16 that FER papers fine-tune, Steiner et al.'s ``vit_base_patch16_224.augreg_in21k_ft_in1k``
  (pre-trained on ImageNet-21k, fine-tuned on ImageNet-1k, as vit-baseline; ``--set
  model.weights=timm:vit_base_patch16_224.augreg_in1k`` for weights that never saw ImageNet-21k);
- ViT-L keeps the stated layer decay 0.65 (the MAE recipe would use 0.75 for ViT-L).

Switches reaching the paper's tables, each also a preset: initialisation x loss (Table II: presets
``sup-ce``, ``sup-scl``, ``sup-mscl``, ``mae-ce``, ``mae-scl``, ``paper`` = MAE + MSCL), projection head
(Table III: ``proj-none``, ``proj-linear``, ``paper`` = dense; ``loss.projection``), class token vs GAP
(Table IV: ``cls-token``; ``model.global_pool``), ViT-B vs ViT-L (Table I: ``paper``, ``paper-large``;
``model.arch`` + ``model.weights``). Table V's MS-Celeb-1M MAE pre-training has no public weights: name such
an encoder with ``--set model.weights=run:<id>`` (a ferbench MAE pre-training run) or a local file.
"""
from __future__ import annotations

from typing import Any, Callable

from ferbench import hookimpl
from ferbench.config import OPTIM_CHOICES
from ferbench.specs import MethodSpec

MAE_B = "timm:vit_base_patch16_224.mae"
SUPERVISED_B = "timm:vit_base_patch16_224.augreg_in21k_ft_in1k"

#: The paper's ViT-B/16 configuration; every preset states only what differs from it.
DEFAULTS: dict[str, Any] = {
    "model": {"arch": "vit_base_patch16_224", "weights": MAE_B, "weights_adapter": "mae-encoder",
              "global_pool": "avg", "drop_path_rate": 0.1, "patch_size": 0, "embed_dim": 0, "depth": 0, "num_heads": 0},
    "loss": {"name": "mscl"},
    "optim": {"name": "adam", "lr": 1e-4, "weight_decay": 5e-4, "layer_decay": 0.65, "schedule": "cosine",
              "warmup_epochs": 5.0, "min_lr": 1e-6},
    "train": {"epochs": 50, "batch_size": 64},
    "data": {"image_size": 224,
             "augment": {"hflip": 0.5, "scale": [1.0, 1.5], "translate": 0.1, "color_jitter": 0.4,
                         "random_erasing": 0.25}},
}

_SUPERVISED = {"weights": SUPERVISED_B, "weights_adapter": "timm"}

#: Paper presets: the final model and one preset per ablation row (Tables I-IV).
PAPER_PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    "paper-large": {"model": {"arch": "vit_large_patch16_224", "weights": "timm:vit_large_patch16_224.mae",
                              "drop_path_rate": 0.2}},
    "sup-ce": {"model": _SUPERVISED, "loss": {"name": "ce"}},
    "sup-scl": {"model": _SUPERVISED, "loss": {"name": "scl"}},
    "sup-mscl": {"model": _SUPERVISED},
    "mae-ce": {"loss": {"name": "ce"}},
    "mae-scl": {"loss": {"name": "scl"}},
    "proj-none": {"loss": {"projection": "none"}},
    "proj-linear": {"loss": {"projection": "linear"}},
    "cls-token": {"model": {"global_pool": "token"}},
}

#: Seconds on a CPU: a 2-block, 48-wide ViT with 6 px patches on 24 px faces, trained from scratch; class-balanced
#: batches keep a few epochs from settling on the majority class of synthfer's RAF-like class frequencies, and
#: flips are the only augmentation (crops slow the first epochs down too much).
TINY: dict[str, Any] = {
    "model": {"arch": "vit_tiny_patch16_224", "weights": "", "drop_path_rate": 0.0, "patch_size": 6, "embed_dim": 48,
              "depth": 2, "num_heads": 2},
    "loss": {"projection_dim": 32},
    "optim": {"name": "adamw", "lr": 2e-3, "weight_decay": 0.05, "layer_decay": 1.0, "warmup_epochs": 0.5,
              "min_lr": 1e-5},
    "train": {"epochs": 10, "balanced_sampling": True},
    "data": {"image_size": 24, "augment": {"scale": [1.0, 1.0], "translate": 0.0, "color_jitter": 0.0,
                                         "random_erasing": 0.0}},
}


def _dataset_presets() -> dict[str, dict[str, dict[str, Any]]]:
    """Per-dataset settings of every paper preset: FERPlus's 512-d projection (contrastive presets only),
    AffectNet-7's 10 epochs with class-balanced sampling."""
    affectnet = {"train": {"epochs": 10, "balanced_sampling": True}}
    presets = {}
    for name, preset in PAPER_PRESETS.items():
        contrastive = preset.get("loss", {}).get("name", "mscl") != "ce"
        presets[name] = {"affectnet7": affectnet,
                         **({"ferplus": {"loss": {"projection_dim": 512}}} if contrastive else {})}
    return presets


@hookimpl
def register_methods(register: Callable[[MethodSpec], None]) -> None:
    register(MethodSpec(
        name="mimic",
        factory="ferbench_plugins.mimic.model:MIMIC",
        presets={**PAPER_PRESETS, "tiny": TINY},
        defaults=DEFAULTS,
        dataset_presets=_dataset_presets(),
        views=2,
        description="MAE ViT-B/16 + GAP head, CE + 0.1 mix-supervised contrastive loss; switches: model.weights/"
                    "weights_adapter (supervised|MAE), loss.name (ce|scl|mscl), loss.projection, "
                    "model.global_pool, model.arch",
        paper="Zhang et al., MIMIC: Mask Image Pre-training with Mix Contrastive Fine-tuning for FER "
              "(arXiv 2401.07245)",
        choices={**OPTIM_CHOICES, "model.global_pool": ("avg", "token"),
                 "model.weights_adapter": ("mae-encoder", "timm", "exact")},
    ))
