"""The fusion network of ``rgbd-fusion``: cross-modality spatial attention, tokens, encoder, MLP head.

Thesis §3.3 (seed 004) and methods.md §4.1-4.2. Each block is one module; the choices the thesis leaves
open are stated where they are made and are switches of the ``model`` section (see the package docstring).
"""
from __future__ import annotations

import torch
from torch import nn

from . import FUSIONS


class SpatialAttention(nn.Module):
    """One LANet-style attention head: Conv1x1 C->C/8, BN, ReLU, Conv1x1 C/8->1, BN, sigmoid (methods.md
    §4.2). Its mask ``[B, 1, H, W]`` lies in (0, 1)."""

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.net = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
                                 nn.Conv2d(hidden, 1, 1), nn.BatchNorm2d(1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class MultiHeadSpatialAttention(nn.Module):
    """S heads of :class:`SpatialAttention` on one modality, reduced by their element-wise maximum (as
    TransFER reduces its attention maps). The thesis regularises with batch normalisation instead of
    TransFER's mask dropout: that is the BN inside each head, before its sigmoid, so masks stay in (0, 1)."""

    def __init__(self, channels: int, heads: int) -> None:
        super().__init__()
        self.heads = nn.ModuleList(SpatialAttention(channels) for _ in range(heads))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([head(x) for head in self.heads]).amax(0)


class CrossModalityFusion(nn.Module):
    """Fuses the streams' feature maps ``{modality: [B, C, H, W]}`` into one map ``[B, C, H, W]``.

    ``attention`` (thesis text): the masks of the modalities are averaged and multiply the RGB features
    (the depth features when depth is the only stream). ``attention-sum`` (the public code's HEAD):
    sum over modalities of mask x features. ``sum`` (Table 3.7, "w/o cross-modality spatial attention"):
    the plain sum of the feature maps. With one modality the first two reduce to mask x features.
    """

    def __init__(self, channels: int, modalities: tuple[str, ...], mode: str, heads: int) -> None:
        super().__init__()
        if mode not in FUSIONS:
            raise ValueError(f"unknown fusion {mode!r}; choose one of {FUSIONS}")
        self.modalities, self.mode = modalities, mode
        self.attention = nn.ModuleDict(
            {} if mode == "sum" else {name: MultiHeadSpatialAttention(channels, heads) for name in modalities})

    def masks(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The attention mask ``[B, 1, H, W]`` of each modality (none with ``sum`` fusion)."""
        return {name: module(features[name]) for name, module in self.attention.items()}

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.mode == "sum":
            return torch.stack([features[name] for name in self.modalities]).sum(0)
        masks = self.masks(features)
        if self.mode == "attention-sum":
            return torch.stack([masks[name] * features[name] for name in self.modalities]).sum(0)
        guided = "rgb" if "rgb" in self.modalities else self.modalities[0]
        return torch.stack(list(masks.values())).mean(0) * features[guided]


class TokenEncoder(nn.Module):
    """1x1 convolution to ``dim`` channels, the H x W positions as tokens (81 at 260 px), a transformer
    encoder, and one vector per image.

    Readout: the mean of the output tokens (the thesis adds no class token), or a learned class token
    (``class_token``). ``layers = 0`` replaces the encoder by average pooling of the tokens (Table 3.7,
    "w/o ViT encoder"). Layers are pre-norm ViT blocks (``norm_first``, GELU, final LayerNorm) since the
    thesis calls the encoder a small Vision Transformer; ``pos_embed`` adds a learned position embedding
    (the thesis's text is silent; the public code's earlier encoders had one, its HEAD has none).
    """

    def __init__(self, channels: int, num_tokens: int, dim: int, layers: int, heads: int, mlp_ratio: float,
                 dropout: float, class_token: bool, pos_embed: bool) -> None:
        super().__init__()
        self.proj = nn.Conv2d(channels, dim, 1)
        self.layers = layers
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if class_token and layers else None
        extra = 1 if self.cls_token is not None else 0
        self.pos_embed = nn.Parameter(torch.zeros(1, num_tokens + extra, dim)) if pos_embed and layers else None
        for parameter in (self.cls_token, self.pos_embed):
            if parameter is not None:
                nn.init.trunc_normal_(parameter, std=0.02)
        if layers:
            block = nn.TransformerEncoderLayer(dim, heads, int(dim * mlp_ratio), dropout, activation="gelu",
                                               batch_first=True, norm_first=True)
            self.encoder = nn.TransformerEncoder(block, layers, norm=nn.LayerNorm(dim), enable_nested_tensor=False)

    def no_weight_decay(self) -> set[str]:
        """Token parameters are exempt from weight decay (read by ``ferbench.optim``)."""
        return {"cls_token", "pos_embed"}

    def forward(self, fused: torch.Tensor) -> torch.Tensor:
        tokens = self.proj(fused).flatten(2).transpose(1, 2)  # [B, H*W, dim]
        if not self.layers:
            return tokens.mean(1)
        if self.cls_token is not None:
            tokens = torch.cat([self.cls_token.expand(len(tokens), -1, -1), tokens], 1)
        if self.pos_embed is not None:
            tokens = tokens + self.pos_embed
        encoded = self.encoder(tokens)
        return encoded[:, 0] if self.cls_token is not None else encoded.mean(1)


class MLPHead(nn.Module):
    """Two fully connected layers: Linear, GELU, dropout (:meth:`embed`, the features of centre/island
    losses), then Linear to the class logits (:meth:`forward`)."""

    def __init__(self, dim: int, hidden: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.hidden = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout))
        self.out = nn.Linear(hidden, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.hidden(x)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.out(embedding)
