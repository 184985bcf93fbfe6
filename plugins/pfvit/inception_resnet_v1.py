"""Inception-ResNet-V1 (Szegedy et al. 2017) as FaceNet uses it, with facenet-pytorch's module names.

The names, channel counts and residual scales are those of facenet-pytorch's ``InceptionResnetV1``
(methods.md §1.6), so its published VGGFace2 state dict (``20180402-114759-vggface2.pt``) loads by name
through the ``facenet`` weights adapter; facenet-pytorch itself is not a dependency (it pins torch < 2.3).
Input: aligned 160x160 faces standardised as (pixel - 127.5) / 128; output: an L2-normalised 512-d
embedding (or identity logits when ``num_classes`` is given).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: Batch-norm epsilon of the TensorFlow original.
BN_EPS = 1e-3
#: Width of the trunk at each stage.
STAGE35, STAGE17, STAGE8 = 256, 896, 1792
EMBEDDING = 512


class ConvBN(nn.Module):
    """Convolution without bias, batch norm, ReLU (facenet-pytorch's ``BasicConv2d``: ``conv``, ``bn``)."""

    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int], stride: int = 1,
                 padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _chain(*convs: ConvBN) -> nn.Sequential:
    return nn.Sequential(*convs)


class ResidualInception(nn.Module):
    """A residual Inception block: parallel branches, concatenated, a 1x1 ``conv2d`` back to the trunk's
    width, scaled and added to the input, then ReLU unless it is the last block."""

    def __init__(self, branches: list[nn.Module], concat: int, width: int, scale: float, relu: bool = True) -> None:
        super().__init__()
        for index, branch in enumerate(branches):
            self.add_module(f"branch{index}", branch)
        self.conv2d = nn.Conv2d(concat, width, 1)
        self.scale, self.relu = scale, relu
        self.branches = len(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mixed = torch.cat([getattr(self, f"branch{i}")(x) for i in range(self.branches)], dim=1)
        out = x + self.scale * self.conv2d(mixed)
        return F.relu(out) if self.relu else out


def block35(scale: float) -> ResidualInception:
    """Inception-ResNet-A on the 35x35 grid (256 channels)."""
    return ResidualInception([ConvBN(STAGE35, 32, 1),
                              _chain(ConvBN(STAGE35, 32, 1), ConvBN(32, 32, 3, padding=1)),
                              _chain(ConvBN(STAGE35, 32, 1), ConvBN(32, 32, 3, padding=1), ConvBN(32, 32, 3, padding=1))],
                             96, STAGE35, scale)


def block17(scale: float) -> ResidualInception:
    """Inception-ResNet-B on the 17x17 grid (896 channels)."""
    return ResidualInception([ConvBN(STAGE17, 128, 1),
                              _chain(ConvBN(STAGE17, 128, 1), ConvBN(128, 128, (1, 7), padding=(0, 3)),
                                     ConvBN(128, 128, (7, 1), padding=(3, 0)))],
                             256, STAGE17, scale)


def block8(scale: float, relu: bool = True) -> ResidualInception:
    """Inception-ResNet-C on the 8x8 grid (1792 channels)."""
    return ResidualInception([ConvBN(STAGE8, 192, 1),
                              _chain(ConvBN(STAGE8, 192, 1), ConvBN(192, 192, (1, 3), padding=(0, 1)),
                                     ConvBN(192, 192, (3, 1), padding=(1, 0)))],
                             384, STAGE8, scale, relu)


class Reduction(nn.Module):
    """A grid reduction: strided branches and a 3x3/2 max-pool, concatenated."""

    def __init__(self, branches: list[nn.Module]) -> None:
        super().__init__()
        for index, branch in enumerate(branches):
            self.add_module(f"branch{index}", branch)
        self.branches = len(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([getattr(self, f"branch{i}")(x) for i in range(self.branches)], dim=1)


def mixed_6a() -> Reduction:
    """35x35x256 -> 17x17x896."""
    return Reduction([ConvBN(STAGE35, 384, 3, stride=2),
                      _chain(ConvBN(STAGE35, 192, 1), ConvBN(192, 192, 3, padding=1), ConvBN(192, 256, 3, stride=2)),
                      nn.MaxPool2d(3, stride=2)])


def mixed_7a() -> Reduction:
    """17x17x896 -> 8x8x1792."""
    return Reduction([_chain(ConvBN(STAGE17, 256, 1), ConvBN(256, 384, 3, stride=2)),
                      _chain(ConvBN(STAGE17, 256, 1), ConvBN(256, 256, 3, stride=2)),
                      _chain(ConvBN(STAGE17, 256, 1), ConvBN(256, 256, 3, padding=1), ConvBN(256, 256, 3, stride=2)),
                      nn.MaxPool2d(3, stride=2)])


class InceptionResnetV1(nn.Module):
    """FaceNet's Inception-ResNet-V1: stem, 5 x A (scale 0.17), reduction, 10 x B (0.10), reduction,
    5 x C (0.20) and a last C without ReLU, average pool, dropout, Linear 1792 -> 512 (no bias),
    BatchNorm1d; L2-normalised embedding, or ``logits`` when ``num_classes`` is given (VGGFace2: 8631)."""

    def __init__(self, num_classes: int | None = None, dropout: float = 0.6) -> None:
        super().__init__()
        self.conv2d_1a = ConvBN(3, 32, 3, stride=2)
        self.conv2d_2a = ConvBN(32, 32, 3)
        self.conv2d_2b = ConvBN(32, 64, 3, padding=1)
        self.maxpool_3a = nn.MaxPool2d(3, stride=2)
        self.conv2d_3b = ConvBN(64, 80, 1)
        self.conv2d_4a = ConvBN(80, 192, 3)
        self.conv2d_4b = ConvBN(192, STAGE35, 3, stride=2)
        self.repeat_1 = nn.Sequential(*(block35(0.17) for _ in range(5)))
        self.mixed_6a = mixed_6a()
        self.repeat_2 = nn.Sequential(*(block17(0.10) for _ in range(10)))
        self.mixed_7a = mixed_7a()
        self.repeat_3 = nn.Sequential(*(block8(0.20) for _ in range(5)))
        self.block8 = block8(1.0, relu=False)
        self.avgpool_1a = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.last_linear = nn.Linear(STAGE8, EMBEDDING, bias=False)
        self.last_bn = nn.BatchNorm1d(EMBEDDING, eps=BN_EPS)
        self.logits = nn.Linear(EMBEDDING, num_classes) if num_classes else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Standardised faces ``[B, 3, 160, 160]`` -> unit embeddings ``[B, 512]`` (or logits)."""
        for stage in (self.conv2d_1a, self.conv2d_2a, self.conv2d_2b, self.maxpool_3a, self.conv2d_3b,
                      self.conv2d_4a, self.conv2d_4b, self.repeat_1, self.mixed_6a, self.repeat_2, self.mixed_7a,
                      self.repeat_3, self.block8):
            x = stage(x)
        x = self.last_bn(self.last_linear(self.dropout(self.avgpool_1a(x).flatten(1))))
        return self.logits(x) if self.logits is not None else F.normalize(x, p=2, dim=1)
