"""nr-fpdls: resizer, STN and SR modules, the up/down-scaling switches, the backbones, the presets, and a tiny
end-to-end run."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from conftest import data_info, ferbench_json, one_training_step, planned_config, random_batch
from ferbench.errors import UsageError
from ferbench.plugins import registry
from ferbench.specs import load_object
from ferbench_plugins.common.backbones import create_backbone, pooled_features
from ferbench_plugins.nr_fpdls import BACKBONES
from ferbench_plugins.nr_fpdls.resizer import LearnedResizer
from ferbench_plugins.nr_fpdls.stn import SpatialTransformer
from ferbench_plugins.nr_fpdls.superres import SuperResolution


def _all_parameters_get_gradients(module: torch.nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    out = module(inputs)
    (out ** 2).mean().backward()
    missing = [name for name, p in module.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing
    return out


def test_learned_resizer_resizes_and_trains() -> None:
    torch.manual_seed(0)
    out = _all_parameters_get_gradients(LearnedResizer(20, channels=4, blocks=2), torch.randn(3, 3, 36, 36))
    assert out.shape == (3, 3, 20, 20)


def test_stn_starts_as_the_identity_and_trains() -> None:
    torch.manual_seed(0)
    images = torch.randn(2, 3, 32, 32)
    stn = SpatialTransformer(32)
    assert torch.allclose(stn(images), images, atol=1e-5)
    stn(images).pow(2).mean().backward()
    assert stn.regressor[-1].weight.grad.abs().sum() > 0  # the zero-initialised last layer learns
    torch.nn.init.normal_(stn.regressor[-1].weight, std=0.01)  # once it has moved, every layer learns
    stn.zero_grad(set_to_none=True)
    assert _all_parameters_get_gradients(stn, images).shape == images.shape
    with pytest.raises(UsageError, match="at least 18 px"):
        SpatialTransformer(16)


def test_super_resolution_starts_as_bicubic_and_trains() -> None:
    torch.manual_seed(0)
    images = torch.randn(2, 3, 8, 8)
    sr = SuperResolution(4, channels=4, blocks=1, mean=(0.5, 0.4, 0.3), std=(0.2, 0.2, 0.2))
    bicubic = F.interpolate(images, scale_factor=4, mode="bicubic", align_corners=False)
    assert torch.allclose(sr(images), bicubic, atol=1e-5)
    out = sr(images)
    out.pow(2).mean().backward()
    assert sr.tail.weight.grad.abs().sum() > 0 and out.shape == (2, 3, 32, 32)
    with pytest.raises(UsageError, match="power of two"):
        SuperResolution(3)


def _tiny_method(**assignments: object) -> torch.nn.Module:
    config = planned_config("nr-fpdls", **assignments)
    return load_object(registry().method("nr-fpdls").factory)(config, data_info(3, config["data"]["image_size"]))


@pytest.mark.parametrize("upscale, downscale, stn", [("bilinear", "none", False), ("bilinear", "learned", False),
                                                     ("learned", "bilinear", False), ("learned", "learned", True),
                                                     ("bicubic", "learned", True)])
def test_scaling_switches_reach_the_backbone_input_and_train(upscale: str, downscale: str, stn: bool) -> None:
    torch.manual_seed(0)
    method = _tiny_method(model__upscale=upscale, model__downscale=downscale, model__stn=stn)
    assert method.resize(torch.randn(2, 3, 16, 16)).shape == (2, 3, 24, 24)
    assert type(method.stn).__name__ == ("SpatialTransformer" if stn else "Identity")
    terms = one_training_step(method, random_batch(4, 16, 3))
    assert torch.isfinite(terms["loss"])
    trained = [m for m in (method.upscale, method.stn, method.downscale) if list(m.parameters())]
    assert all(p.grad is not None for module in trained for p in module.parameters())


def test_learned_upscaling_cannot_feed_the_backbone_directly() -> None:
    with pytest.raises(UsageError, match="set model.downscale"):
        _tiny_method(model__upscale="learned", model__downscale="none")


@pytest.mark.parametrize("family, kwargs", [
    ("vit", dict(img_size=32, patch_size=16, embed_dim=32, depth=1, num_heads=2)),
    ("deit", dict(img_size=32, patch_size=16, embed_dim=32, depth=1, num_heads=2)),
    ("convit", dict(img_size=32, embed_dim=48, depth=2, local_up_to_layer=1, num_heads=2)),
    ("xcit", dict(img_size=32, embed_dim=32, depth=1, num_heads=2, cls_attn_layers=1)),
    ("swin-s", dict(img_size=32, embed_dim=16, depths=(1, 1), num_heads=(1, 2), window_size=4)),
])
def test_every_backbone_family_gives_pooled_features_for_a_fresh_head(family: str, kwargs: dict) -> None:
    """Each poster backbone family built as nr-fpdls builds it (no timm classifier, its own head after the
    pooled features); for Swin the pooling lives inside timm's head, so that head must not be replaced."""
    model = create_backbone(BACKBONES[family][0], 0, **kwargs)
    features = pooled_features(model, torch.randn(2, 3, 32, 32))
    assert features.shape == (2, model.num_features)


def test_presets_reach_the_poster_tables() -> None:
    presets = registry().method("nr-fpdls").presets
    assert {f"vanilla-{b}" for b in ("vit", "deit", "convit", "xcit", "swin-s", "swin-t")} <= set(presets)
    assert {f"proposed-{b}" for b in ("vit", "deit", "convit", "xcit", "swin-s")} <= set(presets)
    paper = planned_config("nr-fpdls", "paper")
    assert paper["model"].items() >= {"upscale": "learned", "downscale": "learned", "stn": True,
                                       "arch": "swin_base_patch4_window7_224", "sr_scale": 8, "input_size": 224}.items()
    assert paper["loss"]["name"] == "f-pdls" and paper["data"]["image_size"] == 48
    assert paper["optim"].items() >= {"name": "adam", "lr": 1e-4, "schedule": "step", "gamma": 0.25}.items()
    vanilla = planned_config("nr-fpdls", "vanilla-convit", loss__name="pdls")
    assert vanilla["model"]["arch"] == "convit_small" and vanilla["model"]["downscale"] == "none"
    assert vanilla["loss"] == {"name": "pdls", "alpha": 0.8, "prior": "auto"}
    rows = {name: planned_config("nr-fpdls", name)["model"] for name in ("table2-a", "table2-b", "table2-c")}
    assert [(m["upscale"], m["downscale"]) for m in rows.values()] == [("bilinear", "none"), ("bilinear", "learned"),
                                                                       ("learned", "bilinear")]


@pytest.mark.slow
def test_tiny_nr_fpdls_learns_synthfer_above_chance(fb_env: dict[str, str]) -> None:
    summary = ferbench_json("run", "-m", "nr-fpdls", "-d", "synthfer", "--preset", "tiny", env=fb_env)
    assert summary["aggregate"]["mean_class_accuracy"]["mean"] > 0.2  # chance is 1/7
