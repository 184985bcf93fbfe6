"""PF-ViT's separator S, cross fusion (MCA), generator G and discriminator D (PF-ViT §3.2, Fig. 2)."""
from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ferbench_plugins.common.mae import DecoderTrunk, LayerNorm, MAEDecoder, mae_init_


class Separator(nn.Module):
    """S: a squeeze-and-excitation block (Hu et al.) over the encoder tokens whose sigmoid is the
    element-wise selection mask of eq. 2, ``sigma(S(z))``.

    ``per_token=False`` (the paper's ``[0, 1]^{1 x L}``): squeeze = mean over the N+1 tokens, so one
    channel mask per image, shared by all tokens. ``per_token=True``: the excitation runs on every token
    ("decomposes z token-wisely"), a ``(N+1) x L`` mask. Excitation: Linear(L, L/r) - ReLU - Linear(L/r, L),
    r = ``reduction`` (SE's default 16).
    """

    def __init__(self, dim: int, reduction: int, per_token: bool) -> None:
        super().__init__()
        hidden = max(dim // reduction, 1)
        self.excite = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, dim))
        self.per_token = per_token

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """The mask ``sigma(S(z))``: ``[B, 1, L]`` (per image) or ``[B, T, L]`` (per token), in ``[0, 1]``."""
        squeezed = tokens if self.per_token else tokens.mean(dim=1, keepdim=True)
        return torch.sigmoid(self.excite(squeezed))


def separate(tokens: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 2: ``V_e = z * mask`` (emotion), ``V_p = z * (1 - mask)`` (poker-face residue)."""
    return tokens * mask, tokens * (1 - mask)


class _QKVAttention(nn.Module):
    """The parameters of a timm attention layer (fused ``qkv``, ``proj``), used as cross-attention."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def _split(self, x: torch.Tensor, part: int) -> torch.Tensor:
        dim = self.proj.in_features
        y = F.linear(x, self.qkv.weight[part * dim:(part + 1) * dim], self.qkv.bias[part * dim:(part + 1) * dim])
        return y.unflatten(-1, (self.heads, -1)).transpose(1, 2)

    def forward(self, queries: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        out = F.scaled_dot_product_attention(self._split(queries, 0), self._split(context, 1), self._split(context, 2))
        return self.proj(out.transpose(1, 2).flatten(2))


class CrossFusion(nn.Module):
    """MCA of eq. 3: a pre-norm transformer block in which the queries (mask tokens + fixed positions)
    attend to the context (the separated tokens), then an MLP; residuals on the queries.

    "Implemented by self-attention" is read as: the same multi-head attention as the decoder's
    self-attention blocks, with queries from one sequence and keys/values from the other. Its parameters
    have a timm ``Block``'s layout, so :meth:`copy_block` starts it from the MAE decoder's first block
    (``model.fusion_init: copy``), whose attention already mixed mask tokens with visible tokens.
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        from timm.layers import Mlp

        self.norm1 = LayerNorm(dim)
        self.attn = _QKVAttention(dim, heads)
        self.norm2 = LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, queries: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x = queries + self.attn(self.norm1(queries), self.norm1(context))
        return x + self.mlp(self.norm2(x))

    def copy_block(self, block: nn.Module) -> None:
        """Take the weights of a timm ``Block`` of the same width (strict: every tensor must match)."""
        self.load_state_dict(block.state_dict())


class Generator(nn.Module):
    """G: a copy of the MAE decoder. With cross fusion (eq. 3) the decoder's mask tokens plus fixed
    positions cross-attend to the separated tokens and the decoder blocks turn them into patches; without
    it (``model.cross_fusion: false``, the "no mask tokens" ablation of §4.3) the decoder reads the
    separated tokens directly. :meth:`masked` is MAE's own decoding of visible tokens (Multi-Task MAE)."""

    def __init__(self, num_patches: int, encoder_dim: int, patch_size: int, model_cfg: Mapping[str, Any],
                 cross_fusion: bool) -> None:
        super().__init__()
        self.decoder = MAEDecoder(num_patches, encoder_dim, patch_size, model_cfg)
        self.fusion = (CrossFusion(model_cfg["decoder_embed_dim"], model_cfg["decoder_num_heads"],
                                   model_cfg["mlp_ratio"]) if cross_fusion else None)
        if self.fusion is not None:
            mae_init_(self.fusion)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Patches ``[B, N, p*p*3]`` from all N+1 separated tokens ``[B, N+1, L]`` ([CLS] first)."""
        decoder = self.decoder
        context = decoder.decoder_embed(tokens) + decoder.decoder_pos_embed
        if self.fusion is None:
            return decoder.decoder_pred(decoder.transform(context))[:, 1:]
        queries = (decoder.mask_token + decoder.decoder_pos_embed[:, 1:]).expand(tokens.shape[0], -1, -1)
        return decoder.decoder_pred(decoder.transform(self.fusion(queries, context.to(queries.dtype))))

    def masked(self, tokens: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """MAE decoding: visible tokens ``[B, 1 + keep, L]`` and mask tokens at the removed positions."""
        return self.decoder(tokens, ids_restore)

    def start_fusion_from_decoder(self) -> None:
        """Copy the decoder's first block into the cross fusion (``model.fusion_init: copy``)."""
        if self.fusion is not None:
            self.fusion.copy_block(self.decoder.decoder_blocks[0])


class Discriminator(DecoderTrunk):
    """D: a copy of the MAE decoder that reads images. It needs a patch embedding: an encoder-width one
    with a [CLS] token (both start as copies of E's), then the decoder's ``decoder_embed``, fixed
    positions, blocks and norm, and a linear head on the [CLS] token with K+1 outputs (K emotions, then
    real/fake; eqs. 7-8)."""

    def __init__(self, image_size: int, patch_size: int, encoder_dim: int, num_outputs: int,
                 model_cfg: Mapping[str, Any]) -> None:
        from timm.layers import PatchEmbed

        patch_embed = PatchEmbed(image_size, patch_size, 3, encoder_dim)
        super().__init__(patch_embed.num_patches, encoder_dim, model_cfg)
        self.patch_embed = patch_embed
        self.cls_token = nn.Parameter(torch.zeros(1, 1, encoder_dim))
        self.head = nn.Linear(model_cfg["decoder_embed_dim"], num_outputs)
        mae_init_(self)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, K+1]`` of normalised images ``[B, 3, H, W]``."""
        x = self.patch_embed(images)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1)
        x = self.decoder_embed(x) + self.decoder_pos_embed
        return self.head(self.transform(x)[:, 0])

    def copy_from(self, encoder: nn.Module, decoder: DecoderTrunk) -> None:
        """Start as a copy of the decoder's trunk, with the encoder's patch embedding and [CLS] token."""
        for name in ("decoder_embed", "decoder_blocks", "decoder_norm"):
            getattr(self, name).load_state_dict(getattr(decoder, name).state_dict())
        self.patch_embed.load_state_dict(encoder.patch_embed.state_dict())
        with torch.no_grad():
            self.decoder_pos_embed.copy_(decoder.decoder_pos_embed)
            self.cls_token.copy_(encoder.cls_token)
