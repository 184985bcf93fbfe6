"""Image resizing modules: fixed interpolation and the learnable resizer (Talebi & Milanfar 2021).

The learnable resizer follows the neural-resizer public code (``models/Rescale.py``): a bilinear skip of
the input resized to the output size, plus a trunk Conv 7x7 -> LeakyReLU(0.2) -> Conv 1x1 -> LeakyReLU(0.2)
-> BatchNorm -> bilinear resize (R) -> ``blocks`` residual blocks [Conv 3x3 -> BN -> LeakyReLU -> Conv 3x3
-> BN, + input] -> Conv 3x3 -> BN, + R -> Conv 7x7 to 3 channels. The public code uses 1 block and 16
channels; Talebi & Milanfar's paper uses 2 blocks.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_SLOPE = 0.2


class Interpolate(nn.Module):
    """Resize to ``size`` x ``size`` by ``mode`` interpolation (``bilinear``, ``bicubic``)."""

    def __init__(self, size: int, mode: str) -> None:
        super().__init__()
        self.size, self.mode = size, mode

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-1] == self.size and images.shape[-2] == self.size:
            return images
        return F.interpolate(images, size=(self.size, self.size), mode=self.mode, align_corners=False)


def _conv(in_channels: int, out_channels: int, kernel: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2)


class ResidualBlock(nn.Module):
    """Conv 3x3 -> BN -> LeakyReLU -> Conv 3x3 -> BN, plus the input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv(channels, channels, 3), nn.BatchNorm2d(channels), nn.LeakyReLU(_SLOPE),
                                  _conv(channels, channels, 3), nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class LearnedResizer(nn.Module):
    """Learnable resizer to ``size`` x ``size`` with ``blocks`` residual blocks of ``channels`` channels."""

    def __init__(self, size: int, channels: int = 16, blocks: int = 1, in_channels: int = 3) -> None:
        super().__init__()
        self.resize = Interpolate(size, "bilinear")
        self.head = nn.Sequential(_conv(in_channels, channels, 7), nn.LeakyReLU(_SLOPE), _conv(channels, channels, 1),
                                  nn.LeakyReLU(_SLOPE), nn.BatchNorm2d(channels))
        self.res_blocks = nn.Sequential(*(ResidualBlock(channels) for _ in range(blocks)))
        self.merge = nn.Sequential(_conv(channels, channels, 3), nn.BatchNorm2d(channels))
        self.tail = _conv(channels, in_channels, 7)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        resized = self.resize(self.head(images))
        trunk = self.merge(self.res_blocks(resized)) + resized
        return self.tail(trunk) + self.resize(images)
