"""rgbd-fusion: attention masks, fusion modes, token readouts, streams, optimizer groups, the centre slot,
gradient accumulation, RGB/depth alignment under augmentation, and end-to-end runs on synthfer."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from conftest import ferbench_json, step_context
from ferbench.augment import augment
from ferbench.config import ENGINE_DEFAULTS, build_config, method_tree
from ferbench.errors import FerbenchError
from ferbench.losses import LossInput
from ferbench.method import Batch, DataInfo
from ferbench.plugins import registry
from ferbench.store import Store
from ferbench_plugins.focal_center_island.losses import CENTER_SLOT
from ferbench_plugins.rgbd_fusion.fusion import CrossModalityFusion, MultiHeadSpatialAttention, TokenEncoder
from ferbench_plugins.rgbd_fusion.model import RGBDFusion, Stream

SIZE = 32  # tiny streams cut after blocks[3] (stride 16): 2 x 2 tokens
FAST = ["--preset", "tiny", "--set", "dataset.samples=160", "--set", "dataset.subjects=10",
        "--set", f"data.image_size={SIZE}", "--set", "train.epochs=1"]


def tiny_config(*assignments: tuple[str, object]) -> dict:
    reg = registry()
    spec = reg.method("rgbd-fusion")
    return build_config(method_tree(spec.defaults, spec.presets["tiny"]), {}, assignments=assignments,
                        choices=spec.choices, losses=reg.losses)


def tiny_method(*assignments: tuple[str, object], steps: int = 4, epochs: int = 1) -> RGBDFusion:
    torch.manual_seed(0)
    info = DataInfo(classes=tuple("abcdefg"), modalities=("rgb", "depth"), image_size=SIZE,
                    class_counts=np.array([5, 3, 2, 9, 4, 4, 1]), steps_per_epoch=steps, epochs=epochs)
    return RGBDFusion(tiny_config(*assignments), info)


def batch(n: int, seed: int = 0) -> Batch:
    generator = torch.Generator().manual_seed(seed)
    inputs = {"rgb": torch.randn(n, 3, SIZE, SIZE, generator=generator),
              "depth": torch.randn(n, 1, SIZE, SIZE, generator=generator)}
    return Batch(views=[inputs], labels=torch.arange(n) % 7, rows=torch.arange(n))


def feature_maps(channels: int = 16, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {name: torch.randn(3, channels, 5, 5, generator=generator) for name in ("rgb", "depth")}


# ------------------------------------------------------------------------------------------ modules
def test_attention_masks_are_the_maximum_of_the_heads_in_zero_one() -> None:
    attention = MultiHeadSpatialAttention(16, heads=4).eval()
    x = feature_maps()["rgb"]
    mask = attention(x)
    assert mask.shape == (3, 1, 5, 5) and len(attention.heads) == 4
    assert (mask > 0).all() and (mask < 1).all()
    assert torch.equal(mask, torch.stack([head(x) for head in attention.heads]).amax(0))
    assert mask.std() > 0  # a spatial map, not a constant


@pytest.mark.parametrize("modalities", [("rgb", "depth"), ("rgb",), ("depth",)])
def test_fusion_modes(modalities: tuple[str, ...]) -> None:
    features = feature_maps()
    masks_of = {}
    for mode in ("attention", "attention-sum", "sum"):
        fusion = CrossModalityFusion(16, modalities, mode, heads=4).eval()
        fused, masks = fusion(features), fusion.masks(features)
        masks_of[mode] = masks
        guided = features["rgb" if "rgb" in modalities else "depth"]
        expected = {"attention": sum(masks.values()) / len(modalities) * guided if masks else None,
                    "attention-sum": sum(masks[m] * features[m] for m in modalities) if masks else None,
                    "sum": sum(features[m] for m in modalities)}[mode]
        assert torch.allclose(fused, expected, atol=1e-6)
        assert fused.shape == (3, 16, 5, 5)
    assert masks_of["sum"] == {} and set(masks_of["attention"]) == set(modalities)


def test_token_encoder_readouts() -> None:
    fused = feature_maps()["rgb"]
    pooled = TokenEncoder(16, 25, 8, layers=0, heads=2, mlp_ratio=2.0, dropout=0.0, class_token=True,
                          pos_embed=True)
    assert pooled.cls_token is None and pooled.pos_embed is None
    assert torch.allclose(pooled(fused), pooled.proj(fused).flatten(2).mean(2))  # average pooling
    mean = TokenEncoder(16, 25, 8, layers=2, heads=2, mlp_ratio=2.0, dropout=0.0, class_token=False, pos_embed=True)
    token = TokenEncoder(16, 25, 8, layers=2, heads=2, mlp_ratio=2.0, dropout=0.0, class_token=True, pos_embed=True)
    assert mean.cls_token is None and mean.pos_embed.shape == (1, 25, 8) and mean(fused).shape == (3, 8)
    assert token.cls_token.shape == (1, 1, 8) and token.pos_embed.shape == (1, 26, 8) and token(fused).shape == (3, 8)
    tokens = mean.proj(fused).flatten(2).transpose(1, 2) + mean.pos_embed
    assert torch.allclose(mean(fused), mean.encoder(tokens).mean(1), atol=1e-6)


def test_streams_are_cut_after_the_feature_block_and_stack_depth() -> None:
    torch.manual_seed(0)
    stream = Stream("test_efficientnet", 3).eval()
    assert stream.output_shape(SIZE) == (48, 2, 2) and len(stream.blocks) == 4
    depth = torch.rand(2, 1, SIZE, SIZE)
    assert torch.equal(stream(depth), stream(depth.repeat(1, 3, 1, 1)))
    assert Stream("efficientnet_b2", 6).output_shape(260) == (352, 9, 9)  # thesis §3.3: 9 x 9 x 352
    with pytest.raises(FerbenchError, match="feature_block=9 is out of range"):
        Stream("test_efficientnet", 9)
    with pytest.raises(FerbenchError, match="not a timm EfficientNet-style CNN"):
        Stream("resnet18", 3)


def test_method_builds_the_chosen_streams_and_sizes_the_centres_by_its_embedding() -> None:
    both = tiny_method()
    assert tuple(both.streams) == ("rgb", "depth") and both.loss.centers.shape == (7, 64)
    rgb_only = tiny_method(("model.modalities", "rgb"), ("model.head_hidden", 24), ("loss.name", "center"))
    assert tuple(rgb_only.streams) == ("rgb",) and rgb_only.loss.centers.shape == (7, 24)
    assert rgb_only.predict(batch(3)).shape == (3, 7)
    ce = tiny_method(("loss.name", "ce"), ("model.fusion", "sum"), ("model.encoder_layers", 0))
    assert ce.loss_slots == () and ce.fusion.attention.keys() == set() and not hasattr(ce.tokens, "encoder")
    assert set(ce.configure_optimizers()) == {"model"}


def test_backbones_and_fusion_network_have_their_own_one_cycle_peaks_and_the_same_floor() -> None:
    method = tiny_method(("optim.lr", 1e-3), ("optim.backbone_lr", 1e-4), ("optim.min_lr", 1e-6), steps=5, epochs=2)
    slots = method.configure_optimizers()
    assert set(slots) == {"model", CENTER_SLOT}
    groups = slots["model"].optimizer.param_groups
    stream_ids = {id(p) for p in method.streams.parameters()}
    for group in groups:
        in_streams = {id(p) in stream_ids for p in group["params"]}
        assert len(in_streams) == 1
        assert group["initial_lr"] == pytest.approx(1e-4 if in_streams.pop() else 1e-3)
    in_model = {id(p) for group in groups for p in group["params"]}
    assert id(method.loss.centers) not in in_model
    assert in_model | {id(method.loss.centers)} == {id(p) for p in method.parameters()}
    scheduler = slots["model"].scheduler
    peaks = []
    for _ in range(10):
        peaks.append([g["lr"] for g in groups])
        slots["model"].optimizer.step()
        scheduler.step()
    assert max(p[0] for p in peaks) == pytest.approx(1e-3, rel=0.05)
    assert [g["lr"] for g in groups] == pytest.approx([1e-6] * len(groups))


def test_a_centre_step_moves_centres_toward_their_class_features_and_leaves_the_network_alone() -> None:
    method = tiny_method(("loss.name", "center")).eval()
    slots = method.configure_optimizers()
    ctx = step_context(slots)
    data = batch(14)
    network = {name: p.detach().clone() for name, p in method.named_parameters() if name != "loss.centers"}
    centres = method.loss.centers.detach().clone()

    def loss() -> torch.Tensor:
        features = method.features(data.inputs)
        return method.loss(LossInput(logits=method.classify(features), labels=data.labels, features=features))["loss"]

    with torch.no_grad():
        features = method.features(data.inputs)
    ctx.optimize(loss(), CENTER_SLOT)
    ctx.end_window()
    assert all(torch.equal(p, network[name]) for name, p in method.named_parameters() if name != "loss.centers")
    for label in range(7):
        mean = features[data.labels == label].mean(0)
        assert (method.loss.centers[label] - mean).norm() < (centres[label] - mean).norm()
    moved = method.loss.centers.detach().clone()
    ctx.optimize(loss(), "model")
    ctx.end_window()
    assert torch.equal(method.loss.centers.detach(), moved)
    assert any(not torch.equal(p, network[name]) for name, p in method.named_parameters() if name != "loss.centers")


def test_four_accumulated_batches_of_8_match_one_batch_of_32() -> None:
    settings = (("loss.name", "center"), ("loss.class_weights", False), ("loss.center_update", "gradient"),
                ("optim.name", "sgd"), ("optim.schedule", "constant"), ("optim.lr", 0.05), ("optim.backbone_lr", 0.05))
    whole = tiny_method(*settings).eval()  # eval: batch norm and dropout do not depend on the micro-batch
    split = copy.deepcopy(whole)
    data = batch(32)
    whole.training_step(data, step_context(whole.configure_optimizers(), accum=1))
    ctx = step_context(split.configure_optimizers(), accum=4)
    for k in range(4):
        rows = slice(8 * k, 8 * k + 8)
        ctx.update = k == 3
        split.training_step(Batch(views=[{n: x[rows] for n, x in data.inputs.items()}], labels=data.labels[rows],
                                  rows=data.rows[rows]), ctx)
    ctx.end_window()
    before = tiny_method(*settings)
    for (name, a), b in zip(whole.named_parameters(), split.parameters()):
        assert torch.allclose(a, b, atol=1e-6), name
    assert any(not torch.equal(a, s) for a, s in zip(whole.parameters(), before.parameters()))


# ----------------------------------------------------------------------------- data augmentation
def test_a_random_flip_and_rotation_moves_rgb_and_depth_alike() -> None:
    """A synthetic vertical edge lands in the same column of RGB and depth after the engine's augmentation;
    colour jitter changes RGB only."""
    n, size = 16, 24
    edge = torch.zeros(n, 1, size, size)
    for i in range(n):
        edge[i, :, :, 5 + i % 7:] = 0.6  # a vertical edge, 0.3 / 0.6 so jitter never clips
    edge = edge + 0.3 * (edge == 0)
    inputs = {"rgb": edge.repeat(1, 3, 1, 1), "depth": edge.clone()}
    cfg = {**ENGINE_DEFAULTS["data"]["augment"], "hflip": 0.5, "rotate_degrees": 10.0, "color_jitter": 0.3}
    out = augment(dict(inputs), cfg, torch.Generator().manual_seed(3), lambda x: x)

    def edge_columns(x: torch.Tensor) -> torch.Tensor:
        rows = x[:, :, 8:16, 2:-2]  # central rows, away from the rotated borders
        return rows.diff(dim=-1).abs().argmax(-1)

    rgb, depth = out["rgb"].mean(1, keepdim=True), out["depth"]
    assert torch.equal(edge_columns(rgb), edge_columns(depth))
    moved = (edge_columns(depth) != edge_columns(inputs["depth"])).flatten(1).any(1)
    assert moved.sum() >= n // 2  # flips and rotations happened
    assert not torch.allclose(out["rgb"].mean(1, keepdim=True), out["depth"], atol=1e-3)  # jitter on RGB
    assert out["depth"].max() <= 0.6 + 1e-5


# ----------------------------------------------------------------------------------- end to end
@pytest.mark.parametrize("modalities", ["rgb", "depth"])
def test_single_stream_ablations_run_end_to_end(fb_env: dict[str, str], modalities: str) -> None:
    summary = ferbench_json("run", "-m", "rgbd-fusion", "-d", "synthfer", *FAST, "--set",
                            f"model.modalities={modalities}", env=fb_env)
    (run,) = Store(fb_env["FERBENCH_DB"]).query("SELECT config, status FROM runs")
    assert run["status"] == "completed" and set(summary["folds"]) == {"0"}
    assert run["config"]["model"]["modalities"] == modalities and run["config"]["loss"]["name"] == "island"


@pytest.mark.slow
def test_tiny_preset_learns_synthfer_rgbd_above_chance(fb_env: dict[str, str]) -> None:
    """The README's command: both streams, island loss, about a CPU minute."""
    summary = ferbench_json("run", "-m", "rgbd-fusion", "-d", "synthfer", "--preset", "tiny", env=fb_env)
    assert summary["aggregate"]["mean_class_accuracy"]["mean"] > 0.25  # chance is 1/7
