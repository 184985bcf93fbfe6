"""``vit-baseline``: a timm Vision Transformer with a linear classification head.

The ``paper`` preset is the supervised ImageNet ViT-B/16 baseline that PF-ViT compares against
(PF-ViT, Li et al., "ViT baselines with augmentation"): 224x224 input, Adam, batch 32, lr 1e-4, lr
divided by 10 after 30 epochs without improvement, at most 100 epochs. PF-ViT does not say which
quantity must stop improving; ferbench monitors the training loss (``optim.plateau_monitor``), since
monitoring test accuracy would select on the test split. Augmentation follows the authors' public
fine-tuning script ``main_rafdb.py`` (methods.md §1.4): horizontal flip with probability 0.5; with
probability 0.5 colour jitter (brightness, contrast, saturation and hue 0.25) and the affine
(translate 0.1, scale 1-1.25) together; random erasing with probability 0.5 over 2-25% of the area
(torchvision's default probability with the script's scale range). ferbench's jitter applies its
factors in a fixed order (torchvision shuffles it per image; see :mod:`ferbench.augment`).
The paper's "SL IN1K" weights are Steiner et al.'s supervised ViTs from timm, which its §4.2
footnote 2 says are strictly speaking pre-trained on ImageNet-21k and fine-tuned on ImageNet-1k:
``model.weights`` is ``timm:vit_base_patch16_224.augreg_in21k_ft_in1k``. timm's default tag for this architecture
(``augreg2_in21k_ft_in1k``) was fine-tuned again by timm with another recipe, and ``augreg_in1k``
never saw ImageNet-21k, so both are other weights.

Initialisations of PF-ViT Tables 2-3 (the same recipe and ViT-B/16 with its [CLS] token, other weights):
``paper`` is "SL IN1K" above; ``mae-in1k`` is "MAE IN1K", facebookresearch/mae's ImageNet-1k encoder as
timm publishes it (``timm:vit_base_patch16_224.mae`` through the ``mae-encoder`` adapter, which drops the
decoder); ``mae-affectnet`` is "MAE AffectNet", the encoder of a ferbench MAE pre-training run:
``ferbench pretrain --method mae --dataset affectnet``, then ``--preset mae-affectnet --set
model.weights=run:<id>`` (the ``tiny`` preset takes a ``mae --preset tiny`` run the same way, with
``--set model.weights_adapter=mae-encoder``). Table 2 fine-tunes without augmentation: set the
``data.augment`` keys to 0 for its rows.
"""
from __future__ import annotations

from typing import Callable

from ferbench import hookimpl
from ferbench.config import OPTIM_CHOICES, deep_merge
from ferbench.specs import MethodSpec
from ferbench_plugins.common.vit_sizes import VIT_CONSTRAINTS

PAPER = {
    "model": {"arch": "vit_base_patch16_224", "weights": "timm:vit_base_patch16_224.augreg_in21k_ft_in1k",
              "patch_size": 16, "embed_dim": 768, "depth": 12, "num_heads": 12, "mlp_ratio": 4.0,
              "drop_path_rate": 0.1, "global_pool": "token"},
    "optim": {"name": "adam", "lr": 1e-4, "weight_decay": 0.0, "schedule": "plateau", "plateau_patience": 30},
    "train": {"epochs": 100, "batch_size": 32},
    "data": {"image_size": 224,
             "augment": {"hflip": 0.5, "color_jitter": 0.25, "hue": 0.25, "translate": 0.1,
                         "scale": [1.0, 1.25], "jitter_affine_probability": 0.5,
                         "random_erasing": 0.5, "erasing_area": [0.02, 0.25]}},
}

TINY = {
    "model": {"arch": "vit_tiny_patch16_224", "patch_size": 8, "embed_dim": 96, "depth": 4, "num_heads": 3,
              "mlp_ratio": 2.0, "drop_path_rate": 0.0, "global_pool": "avg"},
    "optim": {"warmup_epochs": 1.0, "min_lr": 1e-5},
    "train": {"epochs": 20, "batch_size": 64},
    "data": {"image_size": 48, "augment": {"hflip": 0.5}},
}


#: Merged under both presets: random initialisation unless ``model.weights`` names weights (a timm tag,
#: a Hub file, a local file or ``run:<id>``, loaded through ``model.weights_adapter``); the loss is
#: selectable (``--set loss.name=...``), cross-entropy by default.
DEFAULTS = {"model": {"weights": "", "weights_adapter": "timm"}, "loss": {"name": "ce"}}

#: PF-ViT Table 2's MAE initialisations of the ``paper`` network (``mae-affectnet`` needs ``model.weights=run:<id>``).
MAE_IN1K = deep_merge(PAPER, {"model": {"weights": "timm:vit_base_patch16_224.mae", "weights_adapter": "mae-encoder"}})
MAE_AFFECTNET = deep_merge(MAE_IN1K, {"model": {"weights": ""}})




@hookimpl
def register_methods(register: Callable[[MethodSpec], None]) -> None:
    register(MethodSpec(
        name="vit-baseline",
        factory="ferbench_plugins.vit_baseline.model:ViTClassifier",
        presets={"paper": PAPER, "mae-in1k": MAE_IN1K, "mae-affectnet": MAE_AFFECTNET, "tiny": TINY},
        defaults=DEFAULTS,
        description="timm ViT + linear head (supervised ImageNet ViT-B/16 in the paper preset)",
        paper="Li et al., PF-ViT (IEEE TCSS 2024), ViT baselines",
        choices={**OPTIM_CHOICES, "model.global_pool": ("token", "avg"),
                 "model.weights_adapter": ("timm", "mae-encoder", "exact")},
        constraints=VIT_CONSTRAINTS,
    ))
