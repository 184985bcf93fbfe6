"""``nr-fpdls``: Vision Transformer equipped with a neural resizer, trained with F-PDLS.

Hwang, Kim, Park, Seo, Ko, Yeo, ICASSP 2022 (poster; public code ``hbin0701/VT_with_NR_for_FER`` covers
Swin-B only). FERPlus's 48 px faces (``data.image_size: 48``) are up-scaled inside the model
(``model.upscale``: ``bicubic`` by default, ``bilinear``, or ``learned``: a super-resolution network, see
``superres.py``, whose weights ``model.sr_weights`` names and the run records), then brought to the
backbone's input size by a learnable resizer (``model.downscale``: ``learned``, ``bilinear`` or ``none`` =
up-scale straight to the input size), optionally behind a spatial transformer (``model.stn``), then a timm
backbone by name (``model.arch`` + ``model.weights``: ViT, DeiT, ConViT, XCiT, Swin) whose pooled features go
to a fresh head. Loss F-PDLS (``loss.name: f-pdls``; ``ce`` and ``pdls`` for the loss ablation). Adam lr 1e-4
without weight decay, batch 64, lr x 0.25 every 15 epochs, 100 epochs (public ``config.json``).

Choices where the poster and the code are silent or disagree, each a config key:

- up-scaling factor: the poster says x4, but the public code's STN is built for 384 px inputs and DIC's
  released face SR models are x8: ``model.sr_scale: 8`` (48 -> 384 -> resizer -> 224);
- the super-resolution network is EDSR-style, not DIC (not re-implemented). Without ``model.sr_weights`` it
  starts as bicubic interpolation and is trained with the classifier; with weights it is frozen (the paper
  up-scales offline) unless ``model.sr_finetune``;
- STN: always on in the public code, optional in the poster; on in ``paper`` (the poster's final row), off
  by default elsewhere (Table 1-2 rows a-d have none);
- head: the public code's Linear(D, 512) -> BatchNorm -> ReLU -> Dropout 0.5 -> Linear (``model.head: mlp``;
  ``linear`` = timm's own single layer); features for a contrastive loss are the backbone's pooled features;
- the public code steps StepLR at the start of each epoch (decaying one epoch early) and selects epochs and
  augments on the test split; ferbench decays after epochs 15, 30, ... and never looks at the test split;
- augmentation from the public code: flip, rotation 45, zoom 1-1.2, colour jitter 0.4;
- the F-PDLS prior is the fold's own vote distribution where the dataset has votes (``loss.prior``).

Presets reaching the poster's tables: ``paper`` (Table 2 e / Table 3 Swin-B F-PDLS / Table 4: Swin-B, STN, SR,
learned resizer, F-PDLS); ``vanilla-<backbone>`` (Table 1 "CE + Vanilla": bilinear up-scaling straight to 224,
no resizer, CE) for vit, deit, convit, xcit, swin-s, and swin-t (Table 3's vanilla column); ``proposed-<backbone>``
(Table 1 "F-PDLS + Proposed": SR + learned resizer, no STN; ``proposed-swin-s`` = Table 2 d); ``table2-a``,
``table2-b``, ``table2-c`` (Swin-S: bilinear/-, bilinear/learned, SR/bilinear with F-PDLS). Table 3's other
cells: ``--set loss.name=ce|pdls|f-pdls`` on ``vanilla-swin-t`` and ``paper``.
"""
from __future__ import annotations

from typing import Any, Callable

from ferbench import hookimpl
from ferbench.config import OPTIM_CHOICES
from ferbench.specs import MethodSpec

#: timm architecture and pretrained weights of each backbone the poster compares (small-sized, Table 1).
BACKBONES: dict[str, tuple[str, str]] = {
    "vit": ("vit_small_patch16_224", "timm:vit_small_patch16_224.augreg_in21k_ft_in1k"),
    "deit": ("deit_small_patch16_224", "timm:deit_small_patch16_224.fb_in1k"),
    "convit": ("convit_small", "timm:convit_small.fb_in1k"),
    "xcit": ("xcit_small_12_p16_224", "timm:xcit_small_12_p16_224.fb_in1k"),
    "swin-s": ("swin_small_patch4_window7_224", "timm:swin_small_patch4_window7_224.ms_in22k_ft_in1k"),
    "swin-t": ("swin_tiny_patch4_window7_224", "timm:swin_tiny_patch4_window7_224.ms_in22k_ft_in1k"),
    "swin-b": ("swin_base_patch4_window7_224", "timm:swin_base_patch4_window7_224.ms_in22k_ft_in1k"),
}

DEFAULTS: dict[str, Any] = {
    "model": {"arch": BACKBONES["swin-b"][0], "weights": BACKBONES["swin-b"][1], "weights_adapter": "timm",
              "input_size": 224,
              "upscale": "bicubic", "sr_scale": 8, "sr_weights": "", "sr_finetune": False, "sr_channels": 64,
              "sr_blocks": 16, "downscale": "learned", "resizer_channels": 16, "resizer_blocks": 1, "stn": False,
              "head": "mlp", "head_hidden": 512, "head_dropout": 0.5, "drop_path_rate": 0.0,
              "patch_size": 0, "embed_dim": 0, "depth": 0, "num_heads": 0},
    "loss": {"name": "f-pdls"},
    "optim": {"name": "adam", "lr": 1e-4, "weight_decay": 0.0, "schedule": "step",
              "milestones": [15, 30, 45, 60, 75, 90], "gamma": 0.25},
    "train": {"epochs": 100, "batch_size": 64},
    "data": {"image_size": 48,
             "augment": {"hflip": 0.5, "rotate_degrees": 45.0, "scale": [1.0, 1.2], "color_jitter": 0.4}},
}

_VANILLA = {"upscale": "bilinear", "downscale": "none", "stn": False}
_PROPOSED = {"upscale": "learned", "downscale": "learned", "stn": False}


def _backbone(name: str, **model: Any) -> dict[str, Any]:
    arch, weights = BACKBONES[name]
    return {"arch": arch, "weights": weights, **model}


def _presets() -> dict[str, dict[str, Any]]:
    presets: dict[str, dict[str, Any]] = {"paper": {"model": {**_PROPOSED, "stn": True}}}
    for name in ("vit", "deit", "convit", "xcit", "swin-s", "swin-t"):
        presets[f"vanilla-{name}"] = {"model": _backbone(name, **_VANILLA), "loss": {"name": "ce"}}
    for name in ("vit", "deit", "convit", "xcit", "swin-s"):
        presets[f"proposed-{name}"] = {"model": _backbone(name, **_PROPOSED)}
    presets["table2-a"] = {"model": _backbone("swin-s", **_VANILLA)}
    presets["table2-b"] = {"model": _backbone("swin-s", **{**_PROPOSED, "upscale": "bilinear"})}
    presets["table2-c"] = {"model": _backbone("swin-s", **{**_PROPOSED, "downscale": "bilinear"})}
    return presets


#: Seconds on a CPU: 16 px faces up-scaled x2 by a small SR network, STN, learned resizer to 24 px, a 2-block
#: 48-wide ViT with 6 px patches trained from scratch; class-balanced batches and flips only (see mimic's tiny
#: preset). lr 1e-3 over 8 epochs: at 2e-3 over 6, two of seeds 0-2 stayed near chance on one thread.
TINY: dict[str, Any] = {
    "model": {"arch": "vit_tiny_patch16_224", "weights": "", "input_size": 24, "upscale": "learned", "sr_scale": 2,
              "sr_channels": 8, "sr_blocks": 1, "resizer_channels": 8, "stn": True, "head_hidden": 64,
              "head_dropout": 0.1, "patch_size": 6, "embed_dim": 48, "depth": 2, "num_heads": 2},
    "optim": {"name": "adamw", "lr": 1e-3, "weight_decay": 0.05, "schedule": "cosine", "warmup_epochs": 0.5,
              "min_lr": 1e-5},
    "train": {"epochs": 8, "balanced_sampling": True},
    "data": {"image_size": 16, "augment": {"rotate_degrees": 0.0, "scale": [1.0, 1.0], "color_jitter": 0.0}},
}


@hookimpl
def register_methods(register: Callable[[MethodSpec], None]) -> None:
    register(MethodSpec(
        name="nr-fpdls",
        factory="ferbench_plugins.nr_fpdls.model:NeuralResizerClassifier",
        presets={**_presets(), "tiny": TINY},
        defaults=DEFAULTS,
        description="48 px faces up-scaled (SR) + learnable resizer [+ STN] + timm ViT/DeiT/ConViT/XCiT/Swin, F-PDLS; "
                    "switches: model.upscale, model.downscale, model.stn, model.arch/weights, "
                    "loss.name (ce|pdls|f-pdls)",
        paper="Hwang et al., Vision Transformer Equipped with Neural Resizer on Facial Expression Recognition "
              "(ICASSP 2022)",
        choices={**OPTIM_CHOICES, "model.upscale": ("bicubic", "bilinear", "learned"),
                 "model.downscale": ("learned", "bilinear", "none"), "model.head": ("mlp", "linear"),
                 "model.weights_adapter": ("timm", "exact")},
    ))
