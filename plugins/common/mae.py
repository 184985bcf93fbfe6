"""Masked-autoencoder building blocks shared by the MAE pre-trainer and PF-ViT.

Layout and maths follow He et al., "Masked Autoencoders Are Scalable Vision Learners" and the state-dict
layout of facebookresearch/mae, so that one checkpoint format serves MAE pre-training, ViT fine-tuning
and PF-ViT: the encoder is a timm ``VisionTransformer`` (``cls_token, pos_embed, patch_embed.proj.*,
blocks.N.*, norm.*``), the decoder holds ``mask_token, decoder_embed.*, decoder_pos_embed,
decoder_blocks.N.*, decoder_norm.*, decoder_pred.*``. Position embeddings of both are fixed 2-D sin-cos
tables (stored as non-trainable parameters, as in MAE, so checkpoints carry them). Patches are flattened
row-major; a patch's pixels are ordered (row, column, channel), MAE's ``patchify`` order, so a
pre-trained ``decoder_pred`` keeps its meaning.
"""
from __future__ import annotations

from functools import partial
from typing import Any, Mapping

import torch
from torch import nn

from ferbench.errors import UsageError

#: LayerNorm of MAE's encoder and decoder.
LayerNorm = partial(nn.LayerNorm, eps=1e-6)
#: State-dict prefixes of an MAE decoder (the rest of an MAE checkpoint is the encoder).
DECODER_PREFIXES = ("mask_token", "decoder_")


def _sincos_1d(dim: int, positions: torch.Tensor) -> torch.Tensor:
    """``[n, dim]``: sines then cosines of ``positions`` at ``dim / 2`` frequencies 1/10000^(i/(dim/2))."""
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2))
    angles = positions.double()[:, None] * omega[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def sincos_pos_embed_2d(dim: int, grid: int, cls_token: bool = True) -> torch.Tensor:
    """Fixed 2-D sin-cos position table ``[1, (1 +) grid*grid, dim]``: the first half of the channels
    encodes a patch's column, the second half its row (MAE's layout); the [CLS] slot is zeros."""
    if dim % 4:
        raise UsageError(f"a 2-D sin-cos position embedding needs a width divisible by 4, got {dim}; "
                         "choose another embed_dim/decoder_embed_dim")
    rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    table = torch.cat([_sincos_1d(dim // 2, cols.flatten()), _sincos_1d(dim // 2, rows.flatten())], dim=1)
    if cls_token:
        table = torch.cat([torch.zeros(1, dim, dtype=table.dtype), table])
    return table.float().unsqueeze(0)


def fixed_parameter(table: torch.Tensor) -> nn.Parameter:
    """A non-trainable parameter (in the state dict, never optimized)."""
    return nn.Parameter(table, requires_grad=False)


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """``[B, C, H, W]`` -> ``[B, (H/p)*(W/p), p*p*C]``, patches row-major, pixels (row, column, channel)."""
    b, c, h, w = images.shape
    x = images.reshape(b, c, h // patch, patch, w // patch, patch)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // patch) * (w // patch), patch * patch * c)


def unpatchify(patches: torch.Tensor, patch: int, channels: int = 3) -> torch.Tensor:
    """Inverse of :func:`patchify` for square images."""
    b, n, _ = patches.shape
    side = int(round(n ** 0.5))
    x = patches.reshape(b, side, side, patch, patch, channels)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(b, channels, side * patch, side * patch)


def pixel_targets(images: torch.Tensor, patch: int, norm_pix: bool) -> torch.Tensor:
    """Reconstruction targets per patch; with ``norm_pix`` each patch is standardised by its own mean and
    variance (MAE's normalised-pixel target, variance + 1e-6)."""
    target = patchify(images.float(), patch)
    if norm_pix:
        mean, var = target.mean(dim=-1, keepdim=True), target.var(dim=-1, keepdim=True)
        target = (target - mean) / (var + 1e-6) ** 0.5
    return target


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error per patch, averaged over the masked patches (``mask`` 1 = masked)."""
    per_patch = ((pred.float() - target) ** 2).mean(dim=-1)
    return (per_patch * mask).sum() / mask.sum().clamp(min=1)


def random_masking(tokens: torch.Tensor, ratio: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keep ``int(N * (1 - ratio))`` random tokens per sample.

    Returns the kept tokens ``[B, keep, D]`` (in shuffled order), the mask ``[B, N]`` (1 = removed, in the
    original order) and ``ids_restore`` ``[B, N]`` that un-shuffles ``[kept, removed]`` back to the
    original order. The shuffle draws from the global torch RNG, which the engine seeds per epoch, so a
    resumed epoch replays the same masks.
    """
    b, n, d = tokens.shape
    keep = int(n * (1 - ratio))
    noise = torch.rand(b, n, device=tokens.device)
    ids_shuffle = noise.argsort(dim=1)
    ids_restore = ids_shuffle.argsort(dim=1)
    kept = tokens.gather(1, ids_shuffle[:, :keep, None].expand(-1, -1, d))
    mask = torch.ones(b, n, device=tokens.device)
    mask[:, :keep] = 0
    return kept, mask.gather(1, ids_restore), ids_restore


def mae_init_(module: nn.Module) -> None:
    """MAE's initialisation: Xavier-uniform linear layers (and patch projections, seen as linear maps),
    zero biases, unit LayerNorms, N(0, 0.02) [CLS] and mask tokens. Fixed position tables are kept."""
    for name, sub in module.named_modules():
        if isinstance(sub, nn.Linear):
            nn.init.xavier_uniform_(sub.weight)
            if sub.bias is not None:
                nn.init.zeros_(sub.bias)
        elif isinstance(sub, nn.LayerNorm):
            nn.init.ones_(sub.weight)
            nn.init.zeros_(sub.bias)
        elif isinstance(sub, nn.Conv2d) and name.endswith("patch_embed.proj"):
            nn.init.xavier_uniform_(sub.weight.view(sub.weight.shape[0], -1))
            nn.init.zeros_(sub.bias)
    for name, param in module.named_parameters():
        if name.rsplit(".", 1)[-1] in ("cls_token", "mask_token"):
            nn.init.normal_(param, std=0.02)


def build_encoder(model_cfg: Mapping[str, Any], image_size: int, drop_path_rate: float = 0.0) -> nn.Module:
    """The ViT encoder sized by the ``model`` section (``patch_size, embed_dim, depth, num_heads,
    mlp_ratio``): a timm ``VisionTransformer`` without head, with a fixed sin-cos ``pos_embed``."""
    from timm.models.vision_transformer import VisionTransformer

    patch = model_cfg["patch_size"]
    if image_size % patch:
        raise UsageError(f"data.image_size {image_size} is not a multiple of model.patch_size {patch}")
    encoder = VisionTransformer(img_size=image_size, patch_size=patch, num_classes=0, global_pool="token",
                                embed_dim=model_cfg["embed_dim"], depth=model_cfg["depth"],
                                num_heads=model_cfg["num_heads"], mlp_ratio=model_cfg["mlp_ratio"], qkv_bias=True,
                                norm_layer=LayerNorm, drop_path_rate=drop_path_rate)
    encoder.pos_embed = fixed_parameter(sincos_pos_embed_2d(model_cfg["embed_dim"], image_size // patch))
    mae_init_(encoder)
    return encoder


def encode_visible(encoder: nn.Module, images: torch.Tensor,
                   ratio: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """MAE's encoder pass: embed patches, add positions, keep a random ``1 - ratio`` of them, prepend
    [CLS], run the blocks and the final norm. Returns (tokens ``[B, 1 + keep, L]``, mask, ids_restore)."""
    x = encoder.patch_embed(images) + encoder.pos_embed[:, 1:]
    x, mask, ids_restore = random_masking(x, ratio)
    cls = (encoder.cls_token + encoder.pos_embed[:, :1]).expand(x.shape[0], -1, -1)
    x = encoder.norm(encoder.blocks(torch.cat([cls, x], dim=1)))
    return x, mask, ids_restore


def transformer_blocks(dim: int, depth: int, heads: int, mlp_ratio: float) -> nn.Sequential:
    """``depth`` pre-norm transformer blocks (timm ``Block``, MAE's settings)."""
    from timm.models.vision_transformer import Block

    return nn.Sequential(*(Block(dim, heads, mlp_ratio, qkv_bias=True, norm_layer=LayerNorm) for _ in range(depth)))


class DecoderTrunk(nn.Module):
    """The part of MAE's decoder that PF-ViT's generator and discriminator share: the projection from
    encoder width to decoder width, the fixed position table, the blocks and the final norm."""

    def __init__(self, num_patches: int, encoder_dim: int, model_cfg: Mapping[str, Any]) -> None:
        super().__init__()
        dim = model_cfg["decoder_embed_dim"]
        self.decoder_embed = nn.Linear(encoder_dim, dim)
        self.decoder_pos_embed = fixed_parameter(sincos_pos_embed_2d(dim, int(round(num_patches ** 0.5))))
        self.decoder_blocks = transformer_blocks(dim, model_cfg["decoder_depth"], model_cfg["decoder_num_heads"],
                                                 model_cfg["mlp_ratio"])
        self.decoder_norm = LayerNorm(dim)

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """Decoder blocks and norm on decoder-width tokens (positions already added)."""
        return self.decoder_norm(self.decoder_blocks(x))


class MAEDecoder(DecoderTrunk):
    """MAE's decoder: mask tokens fill the removed positions, and a linear head predicts each patch's
    ``p*p*3`` pixel values."""

    def __init__(self, num_patches: int, encoder_dim: int, patch_size: int, model_cfg: Mapping[str, Any]) -> None:
        super().__init__(num_patches, encoder_dim, model_cfg)
        dim = model_cfg["decoder_embed_dim"]
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.decoder_pred = nn.Linear(dim, patch_size * patch_size * 3)
        mae_init_(self)

    def forward(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """Patch predictions ``[B, N, p*p*3]`` from encoder tokens ``[B, 1 + keep, L]`` ([CLS] first)."""
        x = self.decoder_embed(latent)
        b, n = ids_restore.shape
        fill = self.mask_token.to(x.dtype).expand(b, n + 1 - x.shape[1], -1)
        patches = torch.cat([x[:, 1:], fill], dim=1).gather(1, ids_restore[..., None].expand(-1, -1, x.shape[2]))
        x = torch.cat([x[:, :1], patches], dim=1) + self.decoder_pos_embed
        return self.decoder_pred(self.transform(x))[:, 1:]


def split_mae_state(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """An MAE-layout state dict split into (encoder tensors, decoder tensors)."""
    encoder = {k: v for k, v in state.items() if not k.startswith(DECODER_PREFIXES)}
    decoder = {k: v for k, v in state.items() if k.startswith(DECODER_PREFIXES)}
    return encoder, decoder
