"""ViT encoder and MAE decoder sizes (data only, no torch: registration modules import it).

PF-ViT (Li et al.) Table 1: ViT-T/S/B encoders with 16-pixel patches, 12 blocks and 64 dimensions per
head; their MAE decoders have 8 blocks and 32 dimensions per head. The public MAE-SFER recipe says the
small and tiny models "follow the same parameter settings" and states no decoder for them, so Table 1 is
the only source of those decoder sizes.
"""
from __future__ import annotations

from typing import Any

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
