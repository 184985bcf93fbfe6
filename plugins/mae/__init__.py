"""``mae``: masked-autoencoder pre-training of a ViT on a dataset's training images (labels unused).

A pre-trainer (``kind="pretrainer"``): ``ferbench pretrain --method mae --dataset D`` trains it, keeps its
encoder + decoder in facebookresearch/mae's key layout, and saves a grid of held-out images (original,
masked, reconstruction). Classifiers start from those weights with ``model.weights=run:<id>``
(``vit-baseline`` through the ``mae-encoder`` adapter, ``pfvit`` encoder, generator and discriminator).

Recipe: PF-ViT (Li et al.) §3.1 and the authors' public MAE-SFER README (methods.md §1.3): random patch
masking at ratio 0.75, loss on the removed patches against normalised pixels, fixed 2-D sin-cos position
embeddings, AdamW with betas (0.9, 0.95) and weight decay 0.05, 300 epochs with 40 linear warm-up
epochs then a cosine decay to 0, ViT-B/16 at 224 px with the decoder of Table 1 (512-d, 8 blocks, 16
heads), batch 32 with 4 accumulation steps. Presets ``paper-small`` and ``paper-tiny`` are Table 1's
ViT-S and ViT-T with their decoders (256/8/8, 128/8/4).

Learning rate: ``optim.blr`` is MAE's base rate 1.5e-4 and the rate used is ``blr * batch_size *
grad_accum_steps / 256`` (7.5e-5 for the paper's effective batch 128); ``optim.lr`` stays 0, meaning
"derive it", and a positive ``optim.lr`` is used as given. Deriving it keeps MAE's linear scaling when a
user changes the batch size or the accumulation, which a fixed rate in the preset would silently break.

Augmentation: MAE pre-trains on ``RandomResizedCrop(224, scale=(0.2, 1.0))`` + horizontal flip;
ferbench's batch augmentation approximates the crop by a random zoom of 1 to sqrt(5) (crop area 20-100%)
with a shift of up to 15% of the side (no aspect-ratio jitter).

Switches: ``model.mask_ratio``, ``model.norm_pix_loss`` (false: raw normalised pixels, as MAE's
``mae_visualize`` weights), the encoder/decoder sizes (``embed_dim, depth, num_heads, decoder_embed_dim,
decoder_depth, decoder_num_heads``; widths must be divisible by 4 for the sin-cos tables).
"""
from __future__ import annotations

from typing import Callable

from ferbench import hookimpl
from ferbench.config import OPTIM_CHOICES, deep_merge
from ferbench.specs import PRETRAINER, MethodSpec
from ferbench.constraints import Constraint
from ferbench_plugins.common.vit_sizes import VIT_CONSTRAINTS, table1_model

#: Merged under every preset.
DEFAULTS = {
    "model": {"mask_ratio": 0.75, "norm_pix_loss": True},
    "optim": {"name": "adamw", "lr": 0.0, "blr": 1.5e-4, "betas": [0.9, 0.95], "weight_decay": 0.05,
              "schedule": "cosine", "min_lr": 0.0},
    "train": {"selection": "final"},
}

PAPER = {
    "model": table1_model("base"),
    "optim": {"warmup_epochs": 40.0},
    "train": {"epochs": 300, "batch_size": 32, "grad_accum_steps": 4},
    "data": {"image_size": 224,
             "augment": {"hflip": 0.5, "scale": [1.0, 2.236], "translate": 0.15}},
}

#: CPU minutes on synthfer, sized like the ``pfvit`` tiny preset (32 px, 8-pixel patches, 96-d encoder with 4
#: blocks, one 64-d decoder block) so that ``pfvit --preset tiny --set model.weights=run:<id>`` takes all of it.
TINY = {
    "model": {"patch_size": 8, "embed_dim": 96, "depth": 4, "num_heads": 3, "mlp_ratio": 2.0,
              "decoder_embed_dim": 64, "decoder_depth": 1, "decoder_num_heads": 2},
    "optim": {"blr": 4e-3, "warmup_epochs": 1.0},
    "train": {"epochs": 8, "batch_size": 64},
    "data": {"image_size": 32, "augment": {"hflip": 0.5, "scale": [1.0, 1.5], "translate": 0.1}},
}


@hookimpl
def register_methods(register: Callable[[MethodSpec], None]) -> None:
    register(MethodSpec(
        name="mae",
        factory="ferbench_plugins.mae.model:MaskedAutoencoder",
        presets={"paper": PAPER, "paper-small": deep_merge(PAPER, {"model": table1_model("small")}),
                 "paper-tiny": deep_merge(PAPER, {"model": table1_model("tiny")}), "tiny": TINY},
        defaults=DEFAULTS,
        kind=PRETRAINER,
        description="masked-autoencoder pre-training of a ViT (keeps encoder + decoder for run:<id> fine-tunes)",
        paper="He et al., MAE (CVPR 2022); recipe of Li et al., PF-ViT (IEEE TCSS 2024), Table 1",
        choices=dict(OPTIM_CHOICES),
        # optim.lr 0 means "derive it from optim.blr" (lr = blr x effective batch / 256)
        constraints={**VIT_CONSTRAINTS, "optim.lr": Constraint(low=0.0, high=10.0)},
    ))
