"""Spatial transformer in front of the resizer, as in the neural-resizer public code (``models/STN.py``):
localisation Conv(3->8, 7x7) -> MaxPool 2 -> ReLU -> Conv(8->10, 5x5) -> MaxPool 2 -> ReLU, regressor
Linear -> ReLU -> Linear(32 -> 6) initialised to the identity transform; ``affine_grid`` / ``grid_sample``
with ``align_corners=True``."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ferbench.errors import UsageError

#: Width of the regressor's hidden layer in the public code.
HIDDEN = 32


def localisation_side(image_size: int) -> int:
    """Side of the localisation network's output map for ``image_size`` inputs (valid convs, two 2x pools)."""
    return ((image_size - 6) // 2 - 4) // 2


class SpatialTransformer(nn.Module):
    """Predicts one affine transform per image and resamples the image with it."""

    def __init__(self, image_size: int, channels: int = 3) -> None:
        super().__init__()
        side = localisation_side(image_size)
        if side < 1:
            raise UsageError(f"the spatial transformer needs inputs of at least 18 px (got {image_size}); "
                             "set model.stn=false or raise the up-scaled size")
        self.localisation = nn.Sequential(nn.Conv2d(channels, 8, 7), nn.MaxPool2d(2), nn.ReLU(inplace=True),
                                          nn.Conv2d(8, 10, 5), nn.MaxPool2d(2), nn.ReLU(inplace=True))
        self.regressor = nn.Sequential(nn.Linear(10 * side * side, HIDDEN), nn.ReLU(inplace=True), nn.Linear(HIDDEN, 6))
        nn.init.zeros_(self.regressor[-1].weight)
        with torch.no_grad():
            self.regressor[-1].bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        theta = self.regressor(self.localisation(images).flatten(1)).view(-1, 2, 3)
        grid = F.affine_grid(theta, list(images.shape), align_corners=True)
        return F.grid_sample(images, grid.to(images.dtype), align_corners=True)
