"""The frozen feature network in front of PF-ViT's second orthogonality term (Table 5).

``inception_resnet_v1``: FaceNet's face-recognition model (VGGFace2 weights of facenet-pytorch), fed
160x160 faces standardised as (pixel - 127.5) / 128, giving unit 512-d embeddings. ``resnet18`` /
``resnet50``: timm ImageNet ResNets, fed ImageNet-normalised images at the run's size, giving the pooled
embedding before the classifier ("feature embeddings before the classification heads", Table 5).
The network never trains: its parameters are frozen and it stays in evaluation mode (batch norm uses
its running statistics), but gradients flow through it to the generated images.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

#: Weights adapter of each network's published state dict.
FACE_ADAPTERS = {"resnet18": "timm", "resnet50": "timm", "inception_resnet_v1": "facenet"}
#: FaceNet's input side and pixel standardisation.
FACENET_SIZE, FACENET_CENTER, FACENET_SCALE = 160, 127.5, 128.0


def _stats(values: Sequence[float]) -> torch.Tensor:
    return torch.as_tensor(list(values), dtype=torch.float32).view(1, -1, 1, 1)


class FrozenFaceFeatures(nn.Module):
    """Images normalised by the loader (``mean``/``std``) -> embeddings of the frozen network ``kind``."""

    def __init__(self, kind: str, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.kind = kind
        if kind == "inception_resnet_v1":
            from .inception_resnet_v1 import InceptionResnetV1

            self.net: nn.Module = InceptionResnetV1()
        else:
            import timm

            self.net = timm.create_model(kind, pretrained=False, num_classes=0)
            self.register_buffer("net_mean", _stats(self.net.pretrained_cfg["mean"]), persistent=False)
            self.register_buffer("net_std", _stats(self.net.pretrained_cfg["std"]), persistent=False)
        self.register_buffer("mean", _stats(mean), persistent=False)
        self.register_buffer("std", _stats(std), persistent=False)
        self.net.requires_grad_(False)
        self.net.eval()

    def train(self, mode: bool = True) -> FrozenFaceFeatures:
        """Stays in evaluation mode whatever the method's mode."""
        super().train(mode)
        self.net.eval()
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pixels = images.float() * self.std + self.mean
        if self.kind == "inception_resnet_v1":
            pixels = F.interpolate(pixels, size=(FACENET_SIZE, FACENET_SIZE), mode="bilinear", align_corners=False)
            return self.net((pixels * 255 - FACENET_CENTER) / FACENET_SCALE)
        return self.net((pixels - self.net_mean) / self.net_std)
