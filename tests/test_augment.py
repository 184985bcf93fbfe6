"""Batch-wise augmentation: hue jitter as torchvision computes it, the jitter + affine group drawn once
per sample, the erasing area range and the range checks."""
from __future__ import annotations

import pytest
import torch
from torchvision.transforms import functional as TF

from ferbench.augment import augment, shift_hue
from ferbench.errors import UsageError

STILL = {"hflip": 0.0, "rotate_degrees": 0.0, "scale": [1.0, 1.0], "translate": 0.0, "color_jitter": 0.0,
         "random_erasing": 0.0}


def identity(inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return inputs


def test_hue_shift_matches_torchvision() -> None:
    rgb = torch.rand(5, 3, 9, 7, generator=torch.Generator().manual_seed(0))
    rgb[0, :, 0, 0] = 0.5  # a grey pixel: no hue to rotate
    shifts = torch.tensor([0.0, 0.1, -0.25, 0.5, -0.5])
    ours = shift_hue(rgb, shifts)
    for image, shift, out in zip(rgb, shifts, ours):
        assert torch.allclose(out, TF.adjust_hue(image, float(shift)), atol=1e-5)
    red = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
    assert torch.allclose(shift_hue(red, torch.tensor([1 / 3])), torch.tensor([0.0, 1.0, 0.0]).view(1, 3, 1, 1),
                          atol=1e-6)


def test_hue_jitter_turns_hue_and_keeps_value_and_saturation() -> None:
    rgb = torch.rand(16, 3, 8, 8, generator=torch.Generator().manual_seed(1)) * 0.8 + 0.1
    plain = augment({"rgb": rgb.clone()}, STILL, torch.Generator().manual_seed(2), identity)["rgb"]
    assert torch.equal(plain, rgb)
    hued = augment({"rgb": rgb.clone()}, {**STILL, "hue": 0.25}, torch.Generator().manual_seed(2), identity)["rgb"]
    assert (hued - rgb).abs().amax(dim=(1, 2, 3)).min() > 1e-3  # every image turned
    assert torch.allclose(hued.amax(1), rgb.amax(1), atol=1e-5)  # value kept
    assert torch.allclose(hued.amax(1) - hued.amin(1), rgb.amax(1) - rgb.amin(1), atol=1e-5)  # chroma kept


def test_jitter_and_affine_are_drawn_together_per_sample() -> None:
    """With ``jitter_affine_probability`` 0.5 a sample gets both the colour jitter (RGB only) and the
    affine (RGB and depth alike), or neither."""
    rgb = torch.rand(64, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    inputs = {"rgb": rgb, "depth": rgb[:, :1].clone()}
    cfg = {**STILL, "color_jitter": 0.4, "translate": 0.2, "scale": [1.0, 1.25], "jitter_affine_probability": 0.5}
    out = augment(dict(inputs), cfg, torch.Generator().manual_seed(4), identity)
    moved = (out["depth"] - inputs["depth"]).abs().amax(dim=(1, 2, 3)) > 1e-3
    recoloured = (out["rgb"] - rgb).abs().amax(dim=(1, 2, 3)) > 1e-3
    assert torch.equal(moved, recoloured)
    assert 16 <= int(moved.sum()) <= 48
    assert torch.allclose(out["rgb"][~moved], rgb[~moved], atol=1e-5)  # an identity resampling at most
    every = augment(dict(inputs), {**cfg, "jitter_affine_probability": 1.0}, torch.Generator().manual_seed(4), identity)
    assert bool(((every["depth"] - inputs["depth"]).abs().amax(dim=(1, 2, 3)) > 1e-3).all())


def test_flip_is_drawn_outside_the_group() -> None:
    rgb = torch.rand(32, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    cfg = {**STILL, "hflip": 1.0, "translate": 0.2, "jitter_affine_probability": 0.0}
    out = augment({"rgb": rgb.clone()}, cfg, torch.Generator().manual_seed(6), identity)["rgb"]
    assert torch.allclose(out, rgb.flip(-1), atol=1e-5)  # every sample flipped, none translated


def test_erasing_area_range() -> None:
    ones = torch.ones(200, 1, 20, 20)
    cfg = {**STILL, "random_erasing": 1.0, "erasing_area": [0.02, 0.25]}
    out = augment({"depth": ones}, cfg, torch.Generator().manual_seed(7), identity)["depth"]
    erased = (out == 0).float().mean(dim=(1, 2, 3))
    assert erased.min() > 0 and erased.max() <= 0.25
    wide = augment({"depth": ones}, {**cfg, "erasing_area": [0.3, 0.6]}, torch.Generator().manual_seed(7),
                   identity)["depth"]
    assert (wide == 0).float().mean(dim=(1, 2, 3)).mean() > erased.mean()


@pytest.mark.parametrize("key, value", [("hue", 0.7), ("jitter_affine_probability", 1.5),
                                        ("erasing_area", [0.3, 0.1]), ("erasing_area", [0.1])])
def test_out_of_range_values_are_refused(key: str, value: object) -> None:
    with pytest.raises(UsageError, match=f"data.augment.{key}"):
        augment({"rgb": torch.rand(2, 3, 4, 4)}, {**STILL, key: value}, torch.Generator(), identity)
