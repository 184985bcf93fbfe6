"""Batch-wise data augmentation on the run's device.

Random parameters are drawn on the CPU from a seeded generator (so results do not depend on the
device) and applied to whole batches: geometric transforms act identically on every modality of a
sample (RGB and its aligned depth map), photometric ones on RGB only.

Order (as torchvision pipelines such as PF-ViT's fine-tuning script apply them): colour jitter, then
flip + affine, then normalisation, then random erasing. ``jitter_affine_probability`` draws once per
sample whether it gets the jitter and the affine (rotation, scale, translation) together, like a
``RandomApply([ColorJitter, RandomAffine], p)``; the flip is drawn on its own. The jitter applies its
factors in the fixed order brightness, contrast, saturation, hue (torchvision's ``ColorJitter``
shuffles that order per image), clamping to ``[0, 1]`` after each as torchvision does.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import torch
import torch.nn.functional as F

from .config import ENGINE_CONSTRAINTS, ENGINE_DEFAULTS, flatten
from .constraints import check_constraints

#: The ``data.augment`` keys and their defaults (a partial config, e.g. in a test, gets these).
DEFAULTS: Mapping[str, Any] = ENGINE_DEFAULTS["data"]["augment"]
_LUMA = (0.299, 0.587, 0.114)


def _uniform(generator: torch.Generator, n: int, low: float, high: float) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def check(cfg: Mapping[str, Any]) -> None:
    """Raise a one-line UsageError for values outside their declared ranges (a run's config was checked
    when it was built; this guards direct calls)."""
    check_constraints(flatten({"data": {"augment": cfg}}), ENGINE_CONSTRAINTS)


def random_affine(inputs: dict[str, torch.Tensor], cfg: Mapping[str, Any], generator: torch.Generator,
                  chosen: torch.Tensor | None = None) -> None:
    """Flip, rotate, scale and translate every modality of each sample with the same parameters;
    where ``chosen`` is false the sample is only flipped (if its flip was drawn)."""
    first = next(iter(inputs.values()))
    n, device = first.shape[0], first.device
    flip = torch.rand(n, generator=generator) < cfg["hflip"]
    degrees, (s_low, s_high), shift = cfg["rotate_degrees"], cfg["scale"], cfg["translate"]
    if not (degrees or s_low != 1.0 or s_high != 1.0 or shift):
        if flip.any():
            chosen_rows = flip.to(device)
            for name, x in inputs.items():
                flipped = x.clone()  # the caller's tensors stay as they were
                flipped[chosen_rows] = x[chosen_rows].flip(-1)
                inputs[name] = flipped
        return
    angle = _uniform(generator, n, -degrees, degrees) * math.pi / 180
    scale = _uniform(generator, n, s_low, s_high)
    tx, ty = (_uniform(generator, n, -shift, shift) * 2 for _ in range(2))
    if chosen is not None:
        angle, tx, ty = (torch.where(chosen, v, torch.zeros_like(v)) for v in (angle, tx, ty))
        scale = torch.where(chosen, scale, torch.ones_like(scale))
    sign = torch.where(flip, -1.0, 1.0)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos * sign, -sin, tx], 1), torch.stack([sin * sign, cos, ty], 1)], 1)
    grid = F.affine_grid(theta.to(device, first.dtype), list(first.shape), align_corners=False)
    for name, x in inputs.items():
        inputs[name] = F.grid_sample(x, grid.to(x.dtype), mode="bilinear", padding_mode="zeros",
                                     align_corners=False)


def _gray(rgb: torch.Tensor) -> torch.Tensor:
    return (_LUMA[0] * rgb[:, 0] + _LUMA[1] * rgb[:, 1] + _LUMA[2] * rgb[:, 2]).unsqueeze(1)


def shift_hue(rgb: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the hue of ``[B, 3, H, W]`` images in ``[0, 1]`` by ``shift[b]`` turns of the colour
    circle (HSV; saturation and value unchanged), as torchvision's ``adjust_hue``."""
    value, _ = rgb.max(dim=1)
    low, _ = rgb.min(dim=1)
    delta = value - low
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    r, g, b = rgb.unbind(1)
    hue = torch.where(value == r, ((g - b) / safe) % 6, torch.where(value == g, (b - r) / safe + 2, (r - g) / safe + 4))
    hue = torch.where(delta > 0, hue, torch.zeros_like(hue)) / 6
    hue = (hue + shift.view(-1, 1, 1)) % 1.0
    # HSV -> RGB: channel n = V - V*S*clamp(min(k, 4 - k), 0, 1) with k = (n + 6 H) mod 6, n = 5, 3, 1.
    channels = [value - delta * (torch.minimum(k, 4 - k)).clamp(0, 1)
                for k in ((n + 6 * hue) % 6 for n in (5.0, 3.0, 1.0))]
    return torch.stack(channels, 1)


def color_jitter(rgb: torch.Tensor, strength: float, generator: torch.Generator, hue: float = 0.0,
                 chosen: torch.Tensor | None = None) -> torch.Tensor:
    """Random brightness, contrast and saturation factors in ``[1 - strength, 1 + strength]`` and a hue
    shift in ``[-hue, hue]``; samples where ``chosen`` is false are left as they are."""
    n, device = rgb.shape[0], rgb.device
    shape = (n, 1, 1, 1)
    brightness, contrast, saturation = (
        _uniform(generator, n, max(0.0, 1 - strength), 1 + strength).to(device, rgb.dtype).view(shape)
        for _ in range(3))
    out = (rgb * brightness).clamp(0, 1)
    mean = _gray(out).mean(dim=(2, 3), keepdim=True)
    out = ((out - mean) * contrast + mean).clamp(0, 1)
    gray = _gray(out)
    out = ((out - gray) * saturation + gray).clamp(0, 1)
    if hue:
        out = shift_hue(out, _uniform(generator, n, -hue, hue).to(device, rgb.dtype))
    if chosen is None:
        return out
    return torch.where(chosen.to(device).view(shape), out, rgb)


def random_erasing(inputs: dict[str, torch.Tensor], probability: float, generator: torch.Generator,
                   area: tuple[float, float] = (0.02, 0.33)) -> None:
    """Zero a random rectangle (``area`` fractions of the image, aspect 0.3-3.3) in each chosen sample,
    on every modality; applied after normalisation, so zero is the dataset mean."""
    first = next(iter(inputs.values()))
    n, height, width = first.shape[0], first.shape[-2], first.shape[-1]
    chosen = torch.rand(n, generator=generator) < probability
    box_area = _uniform(generator, n, area[0], area[1]) * height * width
    aspect = torch.exp(_uniform(generator, n, math.log(0.3), math.log(1 / 0.3)))
    box_h = (box_area * aspect).sqrt().clamp(1, height).long()
    box_w = (box_area / aspect).sqrt().clamp(1, width).long()
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
    """Apply the configured augmentations (``data.augment``; missing keys take :data:`DEFAULTS`) to
    ``[0, 1]`` inputs, normalise, then erase."""
    cfg = {**DEFAULTS, **cfg}
    check(cfg)
    n = next(iter(inputs.values())).shape[0]
    # Drawn only when used, so that configs without the group keep their random streams.
    chosen = (torch.rand(n, generator=generator) < cfg["jitter_affine_probability"]
              if cfg["jitter_affine_probability"] < 1.0 else None)
    if (cfg["color_jitter"] or cfg["hue"]) and "rgb" in inputs:
        inputs["rgb"] = color_jitter(inputs["rgb"], cfg["color_jitter"], generator, cfg["hue"], chosen)
    random_affine(inputs, cfg, generator, chosen)
    inputs = normalize(inputs)
    if cfg["random_erasing"]:
        random_erasing(inputs, cfg["random_erasing"], generator, tuple(cfg["erasing_area"]))
    return inputs
