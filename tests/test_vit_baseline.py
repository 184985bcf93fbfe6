"""vit-baseline's paper preset against PF-ViT (§4.2 footnote 2) and the authors' fine-tuning script
(methods.md §1.4)."""
from __future__ import annotations

import timm

from ferbench_plugins.vit_baseline import PAPER


def test_paper_weights_are_in21k_pretrained_in1k_finetuned() -> None:
    model = PAPER["model"]
    name = str(model.get("weights") or model["arch"]).removeprefix("timm:")
    assert name == "vit_base_patch16_224.augreg_in21k_ft_in1k"
    assert timm.models.get_pretrained_cfg(name) is not None  # a real timm tag (nothing is downloaded)


def test_paper_augmentation_follows_the_authors_script() -> None:
    """HFlip 0.5; RandomApply([ColorJitter(0.25, 0.25, 0.25, 0.25), RandomAffine(translate 0.1, scale
    1-1.25)], p=0.5); RandomErasing(p=0.5, scale=(0.02, 0.25))."""
    augment = PAPER["data"]["augment"]
    assert (augment["hflip"], augment["color_jitter"], augment["hue"]) == (0.5, 0.25, 0.25)
    assert (augment["translate"], augment["scale"], augment.get("rotate_degrees", 0.0)) == (0.1, [1.0, 1.25], 0.0)
    assert augment["jitter_affine_probability"] == 0.5
    assert (augment["random_erasing"], augment["erasing_area"]) == (0.5, [0.02, 0.25])
