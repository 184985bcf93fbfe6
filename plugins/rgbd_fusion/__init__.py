"""``rgbd-fusion``: the two-stream RGB-D network of the 2D+3D FER thesis (seed 004, Ch. 3; its public code
erAI-17/Facial_Expression_Recognition_2024, methods.md §4).

Model (thesis §3.3, :mod:`.model`, :mod:`.fusion`): RGB and depth (one channel stacked to three) each go
through an EfficientNet-B2 (timm ``efficientnet_b2``, 260 px) cut after its last inverted-residual stage
(``blocks[6]``: 352 x 9 x 9); cross-modality spatial attention (S = 4 LANet heads per modality, maximum over
heads, BN inside each head before its sigmoid); the averaged masks multiply the RGB features (the text);
a 1x1 convolution to ``embed_dim`` channels makes 81 tokens for a 4-layer transformer encoder; the mean
of its output tokens goes through a 2-layer MLP.

Choices where the thesis is silent or its code differs (each a ``model`` switch):

* ``fusion``: ``attention`` (text: mean of the two masks x RGB features), ``attention-sum`` (public code
  HEAD: mask_rgb x X_rgb + mask_depth x X_depth), ``sum`` (Table 3.7 "w/o cross-modality spatial
  attention": X_rgb + X_depth).
* ``encoder_layers``: 4 (text); 0 = average pooling of the tokens (Table 3.7 "w/o ViT encoder"). The
  public code instead reuses 8 pretrained layers of an HF FER ViT; ferbench trains a fresh encoder as the
  text says: d 768, 8 heads, MLP 3072, dropout 0.1 (the public code's earlier fresh encoders), pre-norm.
* ``class_token``: false (text: none; readout = mean of the tokens). The public code reads token 0 without
  adding a class token, i.e. one spatial token; ferbench does not reproduce that.
* ``pos_embed``: true (learned, text silent; without it the encoder cannot use the token layout).
* ``head_hidden``: 768, the MLP's hidden width; centre and island losses act on this embedding (after
  the first layer's GELU and dropout), the 768-d features of the public code's island loss.
* ``modalities``: ``rgb+depth``, ``rgb`` (Table 3.6), ``depth``: which streams exist; one stream keeps the
  attention (its own masks), the encoder and the head.
* Weights: ``rgb_weights``/``depth_weights`` are weights references, loaded with ``weights_adapter``. The
  thesis starts both streams from HSEmotion's ``enet_b2_7`` (VGGFace2 face identification, then AffectNet
  expressions; methods.md §4.7). The ``paper`` preset names it as the local file
  ``~/.ferbench/weights/enet_b2_7.safetensors``, made from HSEmotion's pickle with
  ``ferbench weights convert --from-pickle --trust-pickle enet_b2_7.pt ~/.ferbench/weights/enet_b2_7.safetensors``.
  Fallback without it, ImageNet weights: ``--set model.rgb_weights=timm:efficientnet_b2.ra_in1k --set
  model.depth_weights=timm:efficientnet_b2.ra_in1k --set model.weights_adapter=timm``.

Training (thesis §3.2, §3.4; ``paper`` preset): AdamW; one-cycle schedule (PyTorch's defaults as in the
public code: 30 % rise from peak/25, cosine down) with peaks 1e-4 for the backbones (``optim.backbone_lr``)
and 1e-3 for the fusion network (``optim.lr``) and floor 1e-6 for both (``optim.min_lr``; the public code's
real floor is peak/2.5e5); weight decay 1e-4 (tuned by Optuna in the thesis, value not given; the value of
the author's loss-library example); island loss (``loss.name=island``, Cai et al.'s form, lambdas 1e-2 and
10, centres by SGD at 0.5; :mod:`ferbench_plugins.focal_center_island.losses`), CE class-weighted; AMP on
CUDA; effective batch 128 = 32 x 4 accumulated micro-batches (the thesis accumulates to 128 on a 12 GB GPU
without giving the micro-batch; 32 keeps batch-norm statistics of the micro-batches meaningful); 10
epochs; per-fold z-scoring per modality (``data.fold_statistics``) on face pixels only
(``data.fold_statistics_foreground``: black background pixels left out of the mean/std, as the issue that
specified this method reads the thesis; the thesis text (eq. 3.1) does not say it and its public code's
statistics include the background: ``--set data.fold_statistics_foreground=false`` gives that); augmentation: rotation up to 10
degrees, horizontal flip, colour jitter 0.2 on RGB only, random erasing with probability 0.25 (the thesis
names them without strengths), geometric ones applied identically to both modalities by the engine.
The score is the final epoch's (the public code keeps the best validation epoch of each fold).

Ablations of the thesis (CalD3rMenD3s, 7 classes) and the switches that reach them:
Table 3.5 (loss): ``--set loss.name=ce --set loss.class_weights=true`` / ``loss.name=center`` /
``loss.name=island``; Table 3.6 (modality): ``--set model.modalities=rgb``; Table 3.7 (modules):
``--set model.encoder_layers=0`` (w/o ViT encoder), ``--set model.fusion=sum`` (w/o cross-modality
attention). Their numbers come from sample-level folds (``caldermends`` protocol ``sample-5fold``).

``tiny`` preset: timm's ``test_efficientnet`` streams (a 0.1 M-parameter EfficientNet-style CNN; every
real EfficientNet is too slow for a CPU minute) cut after ``blocks[3]`` (48 x 3 x 3 at 48 px), a 2-layer
64-d encoder, random initialisation, 4 epochs: on default synthfer about 40 % mean class accuracy
(chance 14 %) in about a CPU minute. ``model.timm_kwargs`` passes further options to timm (e.g.
``--set "model.timm_kwargs={channel_multiplier: 0.5}"``).
"""
from __future__ import annotations

from typing import Callable

from ferbench import hookimpl
from ferbench.config import OPTIM_CHOICES
from ferbench.specs import MethodSpec

#: Both presets share these; each states what differs.
DEFAULTS = {
    "model": {"modalities": "rgb+depth", "fusion": "attention", "attention_heads": 4, "class_token": False,
              "pos_embed": True, "weights_adapter": "hsemotion", "timm_kwargs": {}},
    "loss": {"name": "island"},
    "optim": {"name": "adamw", "schedule": "onecycle", "pct_start": 0.3, "div_factor": 25.0, "weight_decay": 1e-4},
    "data": {"fold_statistics": True, "fold_statistics_foreground": True,
             "augment": {"hflip": 0.5, "rotate_degrees": 10.0, "color_jitter": 0.2, "random_erasing": 0.25}},
}

HSEMOTION_B2 = "~/.ferbench/weights/enet_b2_7.safetensors"
#: How to make the file above (HSEmotion publishes a pickled model on GitHub, not on the Hub).
HSEMOTION_HELP = ("the thesis starts both streams from HSEmotion's face-pretrained EfficientNet-B2: download enet_b2_7.pt "
                  "from github.com/HSE-asavchenko/face-emotion-recognition (models/affectnet_emotions) and run "
                  "`ferbench weights convert --from-pickle --trust-pickle enet_b2_7.pt " + HSEMOTION_B2 + "`, or start "
                  "from ImageNet with --set model.rgb_weights=timm:efficientnet_b2.ra_in1k --set "
                  "model.depth_weights=timm:efficientnet_b2.ra_in1k --set model.weights_adapter=timm")
#: ``model.modalities`` -> the streams built (Table 3.6 trains the RGB stream alone).
STREAMS = {"rgb+depth": ("rgb", "depth"), "rgb": ("rgb",), "depth": ("depth",)}
#: ``model.fusion``: the thesis text, the public code's HEAD, the sum-fusion ablation (Table 3.7).
FUSIONS = ("attention", "attention-sum", "sum")

PAPER = {
    "model": {"arch": "efficientnet_b2", "feature_block": 6, "rgb_weights": HSEMOTION_B2,
              "depth_weights": HSEMOTION_B2, "embed_dim": 768, "encoder_layers": 4, "num_heads": 8,
              "mlp_ratio": 4.0, "head_hidden": 768, "dropout": 0.1},
    "optim": {"lr": 1e-3, "backbone_lr": 1e-4, "min_lr": 1e-6},
    "train": {"epochs": 10, "batch_size": 32, "grad_accum_steps": 4, "eval_batch_size": 128},
    "data": {"image_size": 260},
}

TINY = {
    "model": {"arch": "test_efficientnet", "feature_block": 3, "rgb_weights": "", "depth_weights": "",
              "weights_adapter": "timm", "embed_dim": 64, "encoder_layers": 2, "num_heads": 4, "mlp_ratio": 2.0,
              "head_hidden": 64, "dropout": 0.0},
    "optim": {"lr": 3e-3, "backbone_lr": 3e-3, "min_lr": 1e-5},
    "train": {"epochs": 4, "batch_size": 32, "grad_accum_steps": 2},
    "data": {"image_size": 48},
}


@hookimpl
def register_methods(register: Callable[[MethodSpec], None]) -> None:
    register(MethodSpec(
        weights_help={"model.rgb_weights": HSEMOTION_HELP, "model.depth_weights": HSEMOTION_HELP},
        name="rgbd-fusion",
        factory="ferbench_plugins.rgbd_fusion.model:RGBDFusion",
        presets={"paper": PAPER, "tiny": TINY},
        defaults=DEFAULTS,
        description="two EfficientNet-B2 streams (RGB, depth), cross-modality spatial attention, transformer "
                    "encoder, island loss",
        paper="2D+3D FER thesis (seed 004, erAI-17), Ch. 3",
        modalities=("rgb", "depth"),
        choices={**OPTIM_CHOICES, "model.modalities": tuple(STREAMS), "model.fusion": FUSIONS,
                 "model.weights_adapter": ("hsemotion", "timm", "exact")},
    ))
