"""MAE building blocks and the ``mae`` pre-trainer: position tables, patch order, masking, loss, export."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from conftest import data_info, method_config, step_context, weights_file

from ferbench.errors import FerbenchError, UsageError
from ferbench.method import Batch
from ferbench_plugins.common.mae import (masked_mse, patchify, pixel_targets, random_masking, sincos_pos_embed_2d,
                                         unpatchify)
from ferbench_plugins.mae.model import MaskedAutoencoder, scaled_lr

SIZE = 32  # 4 x 4 patches of 8 pixels in the tiny preset


def tiny_mae(**overrides: object) -> MaskedAutoencoder:
    torch.manual_seed(0)
    config = method_config("mae", "tiny", {"data.image_size": SIZE, "model.depth": 2, **overrides})
    return MaskedAutoencoder(config, data_info(image_size=SIZE))


def batch(n: int = 4) -> Batch:
    generator = torch.Generator().manual_seed(1)
    return Batch(views=[{"rgb": torch.randn(n, 3, SIZE, SIZE, generator=generator)}],
                 labels=torch.zeros(n, dtype=torch.long), rows=torch.arange(n))


def test_sincos_table_encodes_column_then_row_with_a_zero_cls_slot() -> None:
    table = sincos_pos_embed_2d(8, 2)
    assert table.shape == (1, 5, 8) and torch.equal(table[0, 0], torch.zeros(8))
    # patch (row 1, column 0) is index 2; frequencies of a 4-wide half: 1 and 1/100
    expected = [0, 0, 1, 1, math.sin(1), math.sin(0.01), math.cos(1), math.cos(0.01)]
    assert torch.allclose(table[0, 3], torch.tensor(expected, dtype=torch.float32), atol=1e-6)


def test_patchify_orders_patches_row_major_and_pixels_channel_last() -> None:
    images = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    patches = patchify(images, 2)
    assert patches.shape == (2, 4, 12)
    assert torch.equal(patches[0, 1, :3], images[0, :, 0, 2]) and torch.equal(patches[0, 1, 3:6], images[0, :, 0, 3])
    assert torch.equal(patches[1, 2, 6:9], images[1, :, 3, 0])
    assert torch.equal(unpatchify(patches, 2), images)


def test_masking_keeps_a_quarter_and_restores_the_order() -> None:
    tokens = torch.randn(3, 16, 5)
    torch.manual_seed(7)
    kept, mask, ids_restore = random_masking(tokens, 0.75)
    assert kept.shape == (3, 4, 5) and mask.sum(dim=1).tolist() == [12.0] * 3
    # un-shuffling [kept, the removed ones in shuffle order] must give the tokens back
    ids_shuffle = ids_restore.argsort(dim=1)
    full = tokens.gather(1, ids_shuffle[..., None].expand(-1, -1, 5))
    assert torch.equal(full[:, :4], kept)
    assert torch.equal(full.gather(1, ids_restore[..., None].expand(-1, -1, 5)), tokens)
    assert torch.equal(mask.gather(1, ids_shuffle)[:, :4], torch.zeros(3, 4))


def test_masking_is_reproducible_under_a_seed() -> None:
    tokens = torch.randn(2, 16, 3)
    draws = []
    for seed in (5, 5, 6):
        torch.manual_seed(seed)
        draws.append(random_masking(tokens, 0.75)[1])
    assert torch.equal(draws[0], draws[1]) and not torch.equal(draws[0], draws[2])


def test_masked_mse_averages_over_removed_patches_only() -> None:
    pred = torch.tensor([[[1.0, 3.0], [10.0, 10.0]]])
    target = torch.zeros(1, 2, 2)
    assert masked_mse(pred, target, torch.tensor([[1.0, 0.0]])).item() == pytest.approx((1 + 9) / 2)


def test_normalised_pixel_target_standardises_each_patch() -> None:
    target = pixel_targets(torch.rand(2, 3, 8, 8) * 5 + 2, 4, norm_pix=True)
    assert torch.allclose(target.mean(dim=-1), torch.zeros(2, 4), atol=1e-5)
    assert torch.allclose(target.var(dim=-1), torch.ones(2, 4), atol=1e-3)


def test_reconstruction_shapes_and_mask_count() -> None:
    model = tiny_mae()
    loss, pred, mask = model.reconstruct(batch().rgb)
    assert pred.shape == (4, 16, 8 * 8 * 3) and mask.shape == (4, 16)
    assert mask.sum(dim=1).tolist() == [12.0] * 4 and loss.ndim == 0


def test_training_lowers_the_reconstruction_loss() -> None:
    model = tiny_mae()
    ctx = step_context(model.configure_optimizers())
    data = batch(8)

    def loss() -> float:
        torch.manual_seed(3)
        with torch.no_grad():
            return model.reconstruct(data.rgb)[0].item()

    before = loss()
    for _ in range(5):
        model.training_step(data, ctx)
        ctx.end_window()
    assert loss() < before


def test_export_is_the_mae_layout_and_loads_into_a_timm_vit_by_name() -> None:
    from timm.models.vision_transformer import VisionTransformer

    state = tiny_mae().export_state_dict()
    decoder = {k for k in state if k.startswith(("decoder_", "mask_token"))}
    assert {"cls_token", "pos_embed", "patch_embed.proj.weight", "blocks.1.attn.qkv.weight", "norm.weight",
            "mask_token", "decoder_embed.weight", "decoder_pos_embed", "decoder_blocks.0.mlp.fc2.bias",
            "decoder_norm.bias", "decoder_pred.weight"} <= set(state)
    vit = VisionTransformer(img_size=SIZE, patch_size=8, num_classes=7, embed_dim=96, depth=2, num_heads=3,
                            mlp_ratio=2.0)
    result = vit.load_state_dict(state, strict=False)
    assert set(result.missing_keys) == {"head.weight", "head.bias"}
    assert set(result.unexpected_keys) == decoder


def test_position_tables_are_fixed() -> None:
    model = tiny_mae()
    assert not model.encoder.pos_embed.requires_grad and not model.decoder.decoder_pos_embed.requires_grad
    assert torch.equal(model.encoder.pos_embed, sincos_pos_embed_2d(96, 4))


def test_learning_rate_follows_the_linear_scaling_rule() -> None:
    assert scaled_lr({"lr": 0.0, "blr": 1.5e-4}, {"batch_size": 32, "grad_accum_steps": 4}) == pytest.approx(7.5e-5)
    assert scaled_lr({"lr": 3e-4, "blr": 1.5e-4}, {"batch_size": 32, "grad_accum_steps": 4}) == 3e-4
    model = tiny_mae(**{"train.batch_size": 32})
    group = model.configure_optimizers()["model"].optimizer.param_groups[0]
    assert group["initial_lr"] == pytest.approx(4e-3 * 32 / 256)


def test_paper_presets_use_table1_decoders() -> None:
    for preset, decoder in (("paper", (512, 8, 16)), ("paper-small", (256, 8, 8)), ("paper-tiny", (128, 8, 4))):
        model = method_config("mae", preset)["model"]
        assert (model["decoder_embed_dim"], model["decoder_depth"], model["decoder_num_heads"]) == decoder
        assert model["patch_size"] == 16 and model["depth"] == 12 and model["mask_ratio"] == 0.75


def test_image_grid_shows_original_masked_and_reconstruction_rows() -> None:
    model = tiny_mae()
    model.eval()
    torch.manual_seed(0)
    grid = model.images(batch())["reconstruction"]
    assert grid.dtype.name == "uint8" and grid.shape == (3 * (SIZE + 2) + 2, 4 * (SIZE + 2) + 2, 3)
    masked = torch.from_numpy(grid[SIZE + 4:2 * SIZE + 4, 2:SIZE + 2].copy())
    grey = [bool((masked[r:r + 8, c:c + 8] == 128).all()) for r in range(0, SIZE, 8) for c in range(0, SIZE, 8)]
    assert sum(grey) == 12


def test_mask_ratio_outside_the_open_interval_is_refused() -> None:
    with pytest.raises(FerbenchError, match="mask_ratio"):
        tiny_mae(**{"model.mask_ratio": 1.0})


def test_vit_baseline_mae_preset_without_weights_is_refused() -> None:
    from ferbench_plugins.vit_baseline.model import ViTClassifier

    config = method_config("vit-baseline", "mae-affectnet", {"data.image_size": SIZE, "model.depth": 2})
    with pytest.raises(UsageError, match="model.weights=run:<id>"):
        ViTClassifier(config, data_info(image_size=SIZE))


def test_vit_baseline_fine_tunes_from_an_mae_export(tmp_path: Path) -> None:
    from ferbench_plugins.vit_baseline.model import ViTClassifier

    state = tiny_mae().export_state_dict()
    weights = weights_file(state, tmp_path / "mae.safetensors")
    config = method_config("vit-baseline", "tiny", {"data.image_size": SIZE, "model.depth": 2, "model.global_pool": "token",
                                                    "model.weights": weights.ref, "model.weights_adapter": "mae-encoder"})
    model = ViTClassifier(config, data_info(image_size=SIZE, weights={"model.weights": weights}))
    assert torch.equal(model.backbone.blocks[1].attn.proj.weight, state["blocks.1.attn.proj.weight"])
    assert torch.equal(model.backbone.norm.weight, state["norm.weight"])
