"""The learned up-scaler: a face super-resolution network in front of the resizer.

The neural-resizer paper up-scales FER+'s 48 px faces offline with DIC (Ma et al. 2020, a face SR network
guided by landmark heatmaps); ferbench does not re-implement DIC. Its learned up-scaler is an EDSR-style
network (Lim et al. 2017): Conv 3x3, ``blocks`` residual blocks without normalisation (Conv-ReLU-Conv, scaled
by 0.1), Conv 3x3 plus the head's output, then one (Conv 3x3 to 4x channels, PixelShuffle 2) stage per
factor of two and a Conv 3x3 to RGB, added to a bicubic up-scaling of the input. The last convolution starts
at zero, so an untrained network up-scales exactly like bicubic interpolation and learns a correction.

It works on pixel intensities in [0, 1]: inputs are un-normalised with the loader's mean/std and the output
normalised again, so weights trained outside a ferbench run on plain images load unchanged (``model.sr_weights``
in this module's key layout, loaded with the ``exact`` adapter).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ferbench.errors import UsageError

#: Residual scaling of EDSR's blocks.
RES_SCALE = 0.1


class _ResBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + RES_SCALE * self.body(x)


class SuperResolution(nn.Module):
    """Up-scales by ``scale`` (a power of two) with ``blocks`` residual blocks of ``channels`` channels."""

    def __init__(self, scale: int, channels: int = 64, blocks: int = 16, mean: Sequence[float] = (0.0, 0.0, 0.0),
                 std: Sequence[float] = (1.0, 1.0, 1.0)) -> None:
        super().__init__()
        stages = int(round(math.log2(scale))) if scale > 1 else 0
        if scale < 2 or 2 ** stages != scale:
            raise UsageError(f"model.sr_scale must be a power of two >= 2 for the learned up-scaler (got {scale})")
        self.scale = scale
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.head = nn.Conv2d(3, channels, 3, padding=1)
        self.body = nn.Sequential(*(_ResBlock(channels) for _ in range(blocks)),
                                  nn.Conv2d(channels, channels, 3, padding=1))
        self.upsample = nn.Sequential(*(layer for _ in range(stages) for layer in
                                        (nn.Conv2d(channels, 4 * channels, 3, padding=1), nn.PixelShuffle(2))))
        self.tail = nn.Conv2d(channels, 3, 3, padding=1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pixels = images * self.std + self.mean
        features = self.head(pixels)
        detail = self.tail(self.upsample(self.body(features) + features))
        upscaled = F.interpolate(pixels, scale_factor=self.scale, mode="bicubic", align_corners=False) + detail
        return (upscaled - self.mean) / self.std
