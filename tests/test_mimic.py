"""mimic: the GAP head against an MAE checkpoint's keys, the presets behind the paper's tables, a training
step, and a tiny end-to-end run."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from conftest import data_info, ferbench_json, one_training_step, planned_config, random_batch
from ferbench.config import build_config, method_tree
from ferbench.plugins import registry
from ferbench.specs import load_object
from ferbench_plugins.common.backbones import create_backbone, size_overrides
from ferbench_plugins.mimic import PAPER_PRESETS, SUPERVISED_B

#: Fresh tensors of the GAP head: MAE fine-tuning drops the pretrained ``norm`` and starts these.
GAP_HEAD = {"fc_norm.weight", "fc_norm.bias", "head.weight", "head.bias"}


def _mimic(config: dict[str, Any], **info: Any) -> Any:
    return load_object(registry().method("mimic").factory)(config, data_info(3, config["data"]["image_size"], **info))


def _stand_in_mae_checkpoint(model_cfg: dict[str, Any], image_size: int) -> dict[str, torch.Tensor]:
    """An MAE checkpoint in facebookresearch/mae layout for the tiny encoder: timm ViT names with a final
    ``norm`` for the encoder, plus ``mask_token`` and ``decoder_*`` tensors."""
    encoder = create_backbone(model_cfg["arch"], 0, img_size=image_size, global_pool="token",
                              **size_overrides(model_cfg))
    state = {name: torch.randn_like(tensor) for name, tensor in encoder.state_dict().items()}
    width, tokens = 16, state["pos_embed"].shape[1]
    state.update({"mask_token": torch.zeros(1, 1, width),
                  "decoder_embed.weight": torch.randn(width, model_cfg["embed_dim"]),
                  "decoder_embed.bias": torch.zeros(width), "decoder_pos_embed": torch.randn(1, tokens, width),
                  "decoder_blocks.0.norm1.weight": torch.ones(width), "decoder_norm.weight": torch.ones(width),
                  "decoder_pred.weight": torch.randn(3 * 6 * 6, width)})
    return state


def test_gap_head_expects_an_mae_encoder_with_only_its_own_head_fresh() -> None:
    config = planned_config("mimic")
    model = _mimic(config).backbone
    checkpoint = _stand_in_mae_checkpoint(config["model"], config["data"]["image_size"])
    encoder = {k for k in checkpoint if not k.startswith(("decoder_", "mask_token")) and not k.startswith("norm.")}
    own = model.state_dict()
    assert {"norm.weight", "norm.bias"} <= set(checkpoint) and not any(k.startswith("norm.") for k in own)
    assert set(own) - encoder == GAP_HEAD
    assert all(own[k].shape == checkpoint[k].shape for k in encoder)


def test_stand_in_mae_checkpoint_loads_into_the_gap_head(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from ferbench.weights import load_weights

    # 4 blocks: the fresh head stays under the 10% of tensors that the loader lets go unmatched
    config = planned_config("mimic", model__depth=4)
    checkpoint = _stand_in_mae_checkpoint(config["model"], config["data"]["image_size"])
    path = tmp_path / "stand-in-mae.safetensors"
    save_file(checkpoint, str(path))
    report = load_weights(_mimic(config).backbone, str(path), adapter="mae-encoder")
    assert set(report.missing) == GAP_HEAD and not report.unexpected and not report.shape_mismatched
    method = _mimic(config, weights={"model.weights": SimpleNamespace(path=path, ref=str(path))})
    own = method.backbone.state_dict()
    assert torch.equal(own["blocks.0.attn.qkv.weight"], checkpoint["blocks.0.attn.qkv.weight"])
    assert own["head.weight"].std() < 1e-4  # MAE fine-tuning's head initialisation


def _effective(preset: str, dataset: str) -> dict[str, Any]:
    """The config of a preset on a dataset (without its files: only the presets and the loss section)."""
    spec = registry().method("mimic")
    base = method_tree(spec.defaults, spec.presets[preset], spec.dataset_presets.get(preset, {}).get(dataset))
    return build_config(base, {}, choices=spec.choices, losses=registry().losses)


def test_presets_reach_every_row_of_tables_one_to_four() -> None:
    rows = {name: _effective(name, "rafdb") for name in PAPER_PRESETS}
    init_loss = {name: (c["model"]["weights"], c["model"]["weights_adapter"], c["loss"]["name"])
                 for name, c in rows.items()}
    mae = ("timm:vit_base_patch16_224.mae", "mae-encoder")
    assert {init_loss[n] for n in ("sup-ce", "sup-scl", "sup-mscl", "mae-ce", "mae-scl", "paper")} == {
        (*init, loss) for init in ((SUPERVISED_B, "timm"), mae) for loss in ("ce", "scl", "mscl")}  # Table II
    assert [rows[n]["loss"]["projection"] for n in ("proj-none", "proj-linear", "paper")] == ["none", "linear", "dense"]
    assert (rows["cls-token"]["model"]["global_pool"], rows["paper"]["model"]["global_pool"]) == ("token", "avg")
    assert rows["paper-large"]["model"]["weights"] == "timm:vit_large_patch16_224.mae"
    paper = rows["paper"]
    assert paper["loss"] == {**registry().loss("mscl").options, "name": "mscl"}
    assert paper["loss"]["weight"] == 0.1 and paper["loss"]["temperature"] == 0.07
    assert [paper["optim"][k] for k in ("name", "lr", "weight_decay", "layer_decay")] == ["adam", 1e-4, 5e-4, 0.65]
    assert (paper["train"]["epochs"], paper["train"]["batch_size"]) == (50, 64)


def test_dataset_presets_follow_the_paper() -> None:
    assert _effective("paper", "ferplus")["loss"]["projection_dim"] == 512
    assert _effective("paper", "rafdb")["loss"]["projection_dim"] == 128
    assert _effective("sup-ce", "ferplus")["loss"]["name"] == "ce"  # no projection on a CE-only row
    for preset in PAPER_PRESETS:
        affectnet = _effective(preset, "affectnet7")["train"]
        assert (affectnet["epochs"], affectnet["balanced_sampling"]) == (10, True)


@pytest.mark.parametrize("pool, projection", [("avg", "dense"), ("token", "linear"), ("avg", "none")])
def test_tiny_mimic_trains_one_step_on_two_views(pool: str, projection: str) -> None:
    torch.manual_seed(0)
    method = _mimic(planned_config("mimic", model__global_pool=pool, loss__projection=projection))
    assert isinstance(method.backbone.fc_norm, torch.nn.LayerNorm) == (pool == "avg")  # GAP's fresh norm
    terms = one_training_step(method, random_batch(6, 24, 3, views=2))
    assert set(terms) == {"loss", "ce", "mscl"} and all(torch.isfinite(v) for v in terms.values())
    assert all(p.grad is not None for p in method.backbone.head.parameters())


@pytest.mark.slow
def test_tiny_mimic_learns_synthfer_above_chance(fb_env: dict[str, str]) -> None:
    """Runs on the loader's views (two once the multi-view loader lands, one clean view before)."""
    summary = ferbench_json("run", "-m", "mimic", "-d", "synthfer", "--preset", "tiny", env=fb_env)
    assert summary["aggregate"]["mean_class_accuracy"]["mean"] > 0.2  # chance is 1/7
