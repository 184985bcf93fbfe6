"""ViT encoder and MAE decoder sizes (data only, no torch: registration modules import it).

PF-ViT (Li et al.) Table 1: ViT-T/S/B encoders with 16-pixel patches, 12 blocks and 64 dimensions per
head; their MAE decoders have 8 blocks and 32 dimensions per head. The public MAE-SFER recipe says the
small and tiny models "follow the same parameter settings" and states no decoder for them, so Table 1 is
the only source of those decoder sizes.
"""
from __future__ import annotations

from typing import Any

from ferbench.constraints import POSITIVE, Constraint

#: Config keys of one ViT size, by Table 1 name. Patch size 16 and MLP ratio 4 are common to all three.
TABLE1: dict[str, dict[str, Any]] = {
    "tiny": {"embed_dim": 192, "depth": 12, "num_heads": 3,
             "decoder_embed_dim": 128, "decoder_depth": 8, "decoder_num_heads": 4},
    "small": {"embed_dim": 384, "depth": 12, "num_heads": 6,
              "decoder_embed_dim": 256, "decoder_depth": 8, "decoder_num_heads": 8},
    "base": {"embed_dim": 768, "depth": 12, "num_heads": 12,
             "decoder_embed_dim": 512, "decoder_depth": 8, "decoder_num_heads": 16},
}


def table1_model(size: str) -> dict[str, Any]:
    """The ``model`` keys of a Table 1 size at 224 px: patch 16, MLP ratio 4, encoder and decoder sizes."""
    return {"patch_size": 16, "mlp_ratio": 4.0, **TABLE1[size]}


#: Limits of a timm ViT's ``model`` settings: whole patches tile the image and the heads split the
#: width evenly; the name is a timm architecture (a ``/`` would make timm look for a Hub repository).
VIT_CONSTRAINTS = {
    "model.arch": Constraint(pattern=r"[A-Za-z0-9_.-]+",
                             hint="a timm architecture name such as vit_base_patch16_224 (letters, digits, _ . -)"),
    "model.patch_size": Constraint(low=1, divides="data.image_size"),
    "model.embed_dim": Constraint(low=1),
    "model.depth": Constraint(low=1, high=1000),
    "model.num_heads": Constraint(low=1, divides="model.embed_dim"),
    "model.mlp_ratio": POSITIVE,
    "model.drop_path_rate": Constraint(low=0.0, high=1.0, high_open=True),
    "model.decoder_embed_dim": Constraint(low=1),
    "model.decoder_depth": Constraint(low=1, high=1000),
    "model.decoder_num_heads": Constraint(low=1, divides="model.decoder_embed_dim"),
}
