"""Mixup and CutMix of a multi-view batch, drawn from the global torch RNG.

One draw per batch (timm's ``batch`` mode): a coefficient ``lam ~ Beta(alpha, alpha)``, a random partner
permutation, and CutMix with probability ``cutmix_prob`` (Mixup otherwise). Every view and every modality
of a row is mixed with the same partner, coefficient and (relative) box, so the views of a mixed image stay
two augmentations of one mixed image. Random numbers are drawn on the CPU, so a seeded run mixes the same
way on any device and a resumed epoch replays the same draws.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ferbench.losses import MixInfo


@dataclass(frozen=True)
class MixDraw:
    """The random choices of one mix: partner of each row, coefficient, and the CutMix box (relative
    corners ``(top, left, bottom, right)`` in [0, 1]) or None for Mixup."""

    partner: torch.Tensor
    lam: float
    box: tuple[float, float, float, float] | None


def draw_mix(batch_size: int, alpha: float, cutmix_prob: float) -> MixDraw:
    """Draw partner, coefficient and (with probability ``cutmix_prob``) a CutMix box of area ``1 - lam``."""
    cpu = torch.device("cpu")
    lam = float(torch.distributions.Beta(torch.tensor(alpha), torch.tensor(alpha)).sample()) if alpha > 0 else 1.0
    partner = torch.randperm(batch_size, device=cpu)
    if float(torch.rand((), device=cpu)) >= cutmix_prob:
        return MixDraw(partner, lam, None)
    cut = math.sqrt(1.0 - lam)
    centre_y, centre_x = torch.rand(2, device=cpu).tolist()
    top, bottom = max(centre_y - cut / 2, 0.0), min(centre_y + cut / 2, 1.0)
    left, right = max(centre_x - cut / 2, 0.0), min(centre_x + cut / 2, 1.0)
    return MixDraw(partner, lam, (top, left, bottom, right))


def _pixel_box(box: tuple[float, float, float, float], height: int, width: int) -> tuple[int, int, int, int]:
    top, left, bottom, right = box
    return round(top * height), round(left * width), round(bottom * height), round(right * width)


def own_share(draw: MixDraw, height: int, width: int) -> float:
    """Share of each row's own image in an ``height`` x ``width`` mix: ``lam`` for Mixup, the area left
    outside the box (after rounding it to pixels) for CutMix."""
    if draw.box is None:
        return draw.lam
    top, left, bottom, right = _pixel_box(draw.box, height, width)
    return 1.0 - (bottom - top) * (right - left) / (height * width)


def apply_mix(images: torch.Tensor, draw: MixDraw) -> torch.Tensor:
    """``images`` ``[B, C, H, W]`` mixed by ``draw``."""
    partner = draw.partner.to(images.device)
    if draw.box is None:
        return draw.lam * images + (1.0 - draw.lam) * images[partner]
    top, left, bottom, right = _pixel_box(draw.box, *images.shape[-2:])
    mixed = images.clone()
    mixed[..., top:bottom, left:right] = images[partner][..., top:bottom, left:right]
    return mixed


def mix_views(views: list[dict[str, torch.Tensor]], alpha: float,
              cutmix_prob: float) -> tuple[list[dict[str, torch.Tensor]], MixInfo]:
    """Every view mixed with one draw; the MixInfo gives each row's partner and own share (measured on the
    first modality's grid)."""
    first = next(iter(views[0].values()))
    draw = draw_mix(len(first), alpha, cutmix_prob)
    mixed_views = [{name: apply_mix(images, draw) for name, images in view.items()} for view in views]
    lam = own_share(draw, *first.shape[-2:])
    info = MixInfo(partner=draw.partner.to(first.device), lam=torch.full((len(first),), lam, device=first.device))
    return mixed_views, info
