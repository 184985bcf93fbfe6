"""Batch-wise data augmentation on the run's device.

Random parameters are drawn on the CPU from a seeded generator (so results do not depend on the
device) and applied to whole batches: geometric transforms act identically on every modality of a
sample (RGB and its aligned depth map), photometric ones on RGB only.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import torch
import torch.nn.functional as F


def _uniform(generator: torch.Generator, n: int, low: float, high: float) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def random_affine(inputs: dict[str, torch.Tensor], cfg: Mapping[str, Any], generator: torch.Generator) -> None:
    """Flip, rotate, scale and translate every modality of each sample with the same parameters."""
    first = next(iter(inputs.values()))
    n, device = first.shape[0], first.device
    flip = torch.rand(n, generator=generator) < cfg["hflip"]
    degrees, (s_low, s_high), shift = cfg["rotate_degrees"], cfg["scale"], cfg["translate"]
    if not (degrees or s_low != 1.0 or s_high != 1.0 or shift):
        if flip.any():
            mask = flip.to(device).view(-1, 1, 1, 1)
            for name, x in inputs.items():
                inputs[name] = torch.where(mask, x.flip(-1), x)
        return
    angle = _uniform(generator, n, -degrees, degrees) * math.pi / 180
    scale = _uniform(generator, n, s_low, s_high)
    tx, ty = (_uniform(generator, n, -shift, shift) * 2 for _ in range(2))
    sign = torch.where(flip, -1.0, 1.0)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos * sign, -sin, tx], 1), torch.stack([sin * sign, cos, ty], 1)], 1)
    grid = F.affine_grid(theta.to(device, first.dtype), list(first.shape), align_corners=False)
    for name, x in inputs.items():
        inputs[name] = F.grid_sample(x, grid.to(x.dtype), mode="bilinear", padding_mode="zeros",
                                     align_corners=False)


def color_jitter(rgb: torch.Tensor, strength: float, generator: torch.Generator) -> torch.Tensor:
    """Random brightness, contrast and saturation factors in ``[1 - strength, 1 + strength]``."""
    n = rgb.shape[0]
    shape = (n, 1, 1, 1)
    brightness, contrast, saturation = (
        _uniform(generator, n, 1 - strength, 1 + strength).to(rgb.device, rgb.dtype).view(shape) for _ in range(3))
    rgb = rgb * brightness
    gray = (0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2]).unsqueeze(1)
    rgb = (rgb - gray.mean(dim=(2, 3), keepdim=True)) * contrast + gray.mean(dim=(2, 3), keepdim=True)
    gray = (0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2]).unsqueeze(1)
    return ((rgb - gray) * saturation + gray).clamp(0, 1)


def random_erasing(inputs: dict[str, torch.Tensor], probability: float, generator: torch.Generator) -> None:
    """Zero a random rectangle (2-33% of the area, aspect 0.3-3.3) in each chosen sample, on every
    modality; applied after normalisation, so zero is the dataset mean."""
    first = next(iter(inputs.values()))
    n, height, width = first.shape[0], first.shape[-2], first.shape[-1]
    chosen = torch.rand(n, generator=generator) < probability
    area = _uniform(generator, n, 0.02, 0.33) * height * width
    aspect = torch.exp(_uniform(generator, n, math.log(0.3), math.log(1 / 0.3)))
    box_h = (area * aspect).sqrt().clamp(1, height).long()
    box_w = (area / aspect).sqrt().clamp(1, width).long()
    top = (torch.rand(n, generator=generator) * (height - box_h + 1)).long()
    left = (torch.rand(n, generator=generator) * (width - box_w + 1)).long()
    ys, xs = torch.arange(height).view(1, -1, 1), torch.arange(width).view(1, 1, -1)
    mask = ((ys >= top.view(-1, 1, 1)) & (ys < (top + box_h).view(-1, 1, 1))
            & (xs >= left.view(-1, 1, 1)) & (xs < (left + box_w).view(-1, 1, 1)) & chosen.view(-1, 1, 1))
    keep = (~mask).unsqueeze(1).to(first.device)
    for name, x in inputs.items():
        inputs[name] = x * keep.to(x.dtype)


def augment(inputs: dict[str, torch.Tensor], cfg: Mapping[str, Any], generator: torch.Generator,
            normalize: Any) -> dict[str, torch.Tensor]:
    """Apply the configured augmentations to ``[0, 1]`` inputs, normalise, then erase."""
    random_affine(inputs, cfg, generator)
    if cfg["color_jitter"] and "rgb" in inputs:
        inputs["rgb"] = color_jitter(inputs["rgb"], cfg["color_jitter"], generator)
    inputs = normalize(inputs)
    if cfg["random_erasing"]:
        random_erasing(inputs, cfg["random_erasing"], generator)
    return inputs
