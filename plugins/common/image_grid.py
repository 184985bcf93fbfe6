"""Image grids that methods return from ``images(batch)``: rows of normalised images as one uint8 picture."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ferbench.method import DataInfo

#: Images per row of a method's image grid.
GRID_COLUMNS = 8


def rgb_statistics(info: DataInfo, config: Mapping[str, Any]) -> tuple[list[float], list[float]]:
    """(mean, std) with which the loader normalised RGB: ``info.normalization`` when the engine gives it,
    else the ``data`` section's values."""
    if "rgb" in info.normalization:
        mean, std = info.normalization["rgb"]
        return list(mean), list(std)
    return list(config["data"]["mean"]), list(config["data"]["std"])


def denormalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Normalised ``[B, 3, H, W]`` images back to ``[0, 1]`` pixels."""
    shape = (1, -1, 1, 1)
    mean_t = torch.as_tensor(mean, dtype=torch.float32, device=images.device).view(shape)
    std_t = torch.as_tensor(std, dtype=torch.float32, device=images.device).view(shape)
    return (images.float() * std_t + mean_t).clamp(0, 1)


def image_grid(rows: Sequence[torch.Tensor], pad: int = 2) -> np.ndarray:
    """Rows of ``[n, 3, H, W]`` images in ``[0, 1]`` as one ``uint8`` ``[H', W', 3]`` grid on white."""
    n, _, h, w = rows[0].shape
    grid = np.full((len(rows) * (h + pad) + pad, n * (w + pad) + pad, 3), 255, dtype=np.uint8)
    for r, row in enumerate(rows):
        pixels = (row.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        for c in range(n):
            top, left = pad + r * (h + pad), pad + c * (w + pad)
            grid[top:top + h, left:left + w] = pixels[c]
    return grid
