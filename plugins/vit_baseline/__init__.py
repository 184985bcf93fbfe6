"""``vit-baseline``: a timm Vision Transformer with a linear classification head.

The ``paper`` preset is the supervised ImageNet ViT-B/16 baseline that PF-ViT compares against
(PF-ViT, Li et al., "ViT baselines with augmentation"): 224x224 input, Adam, batch 32, lr 1e-4, lr
divided by 10 after 30 epochs without improvement, at most 100 epochs. PF-ViT does not say which
quantity must stop improving; ferbench monitors the training loss (``optim.plateau_monitor``), since
monitoring test accuracy would select on the test split. Augmentation follows the authors' public
fine-tuning script (flip, colour jitter 0.25, affine translate 0.1 / scale 1-1.25, random erasing).
The paper's "SL IN1K" weights are taken as timm's ImageNet-1k-only supervised ViT-B/16
(``vit_base_patch16_224.augreg_in1k``), not timm's default tag, which is pre-trained on ImageNet-21k.

Initialisations of PF-ViT Tables 2-3 (same recipe, other weights, ViT-B/16 with its [CLS] token):

- ``paper``: supervised ImageNet ("SL IN1K"); as a weights reference
  ``model.weights=timm:vit_base_patch16_224.augreg_in21k_ft_in1k`` (footnote 2: pre-trained on
  ImageNet-21k, fine-tuned on ImageNet-1k).
- ``mae-in1k``: "MAE IN1K", facebookresearch/mae's ImageNet-1k encoder as timm publishes it
  (``model.weights=timm:vit_base_patch16_224.mae``, adapter ``mae-encoder``, which drops the decoder).
- ``mae-affectnet``: "MAE AffectNet", the encoder of a ferbench MAE pre-training run:
  ``ferbench pretrain --method mae --dataset affectnet`` then ``--preset mae-affectnet --set
  model.weights=run:<id>`` (the ``tiny`` preset takes a ``mae --preset tiny`` run the same way, with
  ``--set model.weights_adapter=mae-encoder``).

``model.weights`` is a weights reference resolved by the runner (``""``: none); ``model.weights_adapter``
maps its layout onto timm's ViT. Table 2 fine-tunes without augmentation: add ``--set`` of the
``data.augment`` keys to 0 for those rows.
"""
from __future__ import annotations

from typing import Callable

from ferbench import hookimpl
from ferbench.config import OPTIM_CHOICES, deep_merge
from ferbench.specs import MethodSpec

PAPER = {
    "model": {"arch": "vit_base_patch16_224.augreg_in1k", "pretrained": True, "patch_size": 16, "embed_dim": 768,
              "depth": 12, "num_heads": 12, "mlp_ratio": 4.0, "drop_path_rate": 0.1, "global_pool": "token"},
    "optim": {"name": "adam", "lr": 1e-4, "weight_decay": 0.0, "schedule": "plateau", "plateau_patience": 30},
    "train": {"epochs": 100, "batch_size": 32},
    "data": {"image_size": 224,
             "augment": {"hflip": 0.5, "color_jitter": 0.25, "translate": 0.1, "scale": [1.0, 1.25],
                         "random_erasing": 0.25}},
}

TINY = {
    "model": {"arch": "vit_tiny_patch16_224", "pretrained": False, "patch_size": 8, "embed_dim": 96,
              "depth": 4, "num_heads": 3, "mlp_ratio": 2.0, "drop_path_rate": 0.0, "global_pool": "avg"},
    "optim": {"warmup_epochs": 1.0, "min_lr": 1e-5},
    "train": {"epochs": 20, "batch_size": 64},
    "data": {"image_size": 48, "augment": {"hflip": 0.5}},
}


#: Merged under every preset: the loss is selectable (``--set loss.name=...``), cross-entropy by default;
#: no weights reference unless a preset names one.
DEFAULTS = {"loss": {"name": "ce"}, "model": {"weights": "", "weights_adapter": "timm"}}

#: PF-ViT Table 2's MAE initialisations of the same ViT-B/16 (``mae-affectnet`` needs ``model.weights=run:<id>``).
MAE_IN1K = deep_merge(PAPER, {"model": {"arch": "vit_base_patch16_224", "pretrained": False,
                                        "weights": "timm:vit_base_patch16_224.mae", "weights_adapter": "mae-encoder"}})
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
        choices={**OPTIM_CHOICES, "model.global_pool": ("token", "avg")},
    ))
