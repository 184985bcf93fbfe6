"""The engine's step contract: several optimizers, accumulation, clipping, and batch augmentation."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ferbench.augment import augment
from ferbench.loader import ArrayBatches, Normalizer
from ferbench.method import OptimizerSlot, StepContext


def context(slots: dict[str, OptimizerSlot], accum: int = 1, clip: float = 0.0) -> StepContext:
    return StepContext(slots=slots, scaler=torch.amp.GradScaler("cpu", enabled=False), device=torch.device("cpu"),
                       amp_dtype=None, grad_clip=clip, accum_steps=accum)


def test_adversarial_steps_do_not_leak_gradients_between_optimizers() -> None:
    torch.manual_seed(0)
    generator, critic = nn.Linear(4, 4), nn.Linear(4, 1)
    slots = {"g": OptimizerSlot(torch.optim.SGD(generator.parameters(), lr=1.0)),
             "d": OptimizerSlot(torch.optim.SGD(critic.parameters(), lr=1.0))}
    ctx = context(slots)
    x = torch.randn(8, 4)
    # generator first: its loss also writes gradients into the critic ...
    ctx.optimize(critic(generator(x)).mean(), "g")
    before = critic.weight.detach().clone()
    # ... which must not be added to the critic's own gradient
    d_loss = -critic(x).mean()
    ctx.optimize(d_loss, "d")
    expected = before + x.mean(0, keepdim=True)  # d(-mean(Wx + b))/dW = -mean(x); SGD lr 1
    assert torch.allclose(critic.weight, expected, atol=1e-6)


def _adversarial_losses(generator: nn.Module, critic: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(generator loss, critic loss) of a toy GAN step; the generator's loss flows through the critic."""
    fake = generator(x)
    return -critic(fake).mean(), critic(fake.detach()).mean() - critic(x).mean()


def _reference_adversarial(generator: nn.Module, critic: nn.Module, batches: list[torch.Tensor], accum: int) -> None:
    """The same training written by hand: each loss differentiated only w.r.t. its own model."""
    sums: dict[nn.Parameter, torch.Tensor] = {}
    for index, x in enumerate(batches):
        g_loss, d_loss = _adversarial_losses(generator, critic, x)
        for loss, model in ((g_loss, generator), (d_loss, critic)):
            params = list(model.parameters())
            for param, grad in zip(params, torch.autograd.grad(loss / accum, params)):
                sums[param] = sums.get(param, 0) + grad
        if (index + 1) % accum == 0:
            with torch.no_grad():
                for param, grad in sums.items():
                    param -= 0.1 * grad
            sums.clear()


@pytest.mark.parametrize("accum", [1, 2, 4])
def test_two_slot_adversarial_training_matches_a_hand_written_loop(accum: int) -> None:
    torch.manual_seed(0)
    batches = [torch.randn(8, 4) for _ in range(8)]
    nets = [(nn.Linear(4, 4), nn.Linear(4, 1)) for _ in range(2)]
    for mine, ref in zip(nets[0], nets[1]):
        ref.load_state_dict(mine.state_dict())
    generator, critic = nets[0]
    ctx = context({"g": OptimizerSlot(torch.optim.SGD(generator.parameters(), lr=0.1)),
                   "d": OptimizerSlot(torch.optim.SGD(critic.parameters(), lr=0.1))}, accum=accum)
    for index, x in enumerate(batches):
        ctx.update = (index + 1) % accum == 0
        g_loss, d_loss = _adversarial_losses(generator, critic, x)
        ctx.optimize(g_loss, "g")  # generator first: the order in which gradients used to leak
        ctx.optimize(d_loss, "d")
        if ctx.update:
            ctx.end_window()
    _reference_adversarial(*nets[1], batches, accum)
    for mine, ref in zip(nets[0], nets[1]):
        for a, b in zip(mine.parameters(), ref.parameters()):
            assert torch.allclose(a, b, atol=1e-6)


def test_gradient_accumulation_matches_one_big_batch() -> None:
    torch.manual_seed(0)
    x, y = torch.randn(16, 5), torch.randn(16, 1)
    models = [nn.Linear(5, 1) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    big = context({"m": OptimizerSlot(torch.optim.SGD(models[0].parameters(), lr=0.1))})
    big.optimize(nn.functional.mse_loss(models[0](x), y))
    small = context({"m": OptimizerSlot(torch.optim.SGD(models[1].parameters(), lr=0.1))}, accum=2)
    for index, part in enumerate((slice(0, 8), slice(8, 16))):
        small.update = index == 1
        small.optimize(nn.functional.mse_loss(models[1](x[part]), y[part]))
    small.end_window()
    assert torch.allclose(models[0].weight, models[1].weight, atol=1e-6)


def test_clipping_bounds_the_update() -> None:
    model = nn.Linear(3, 1, bias=False)
    model.weight.data.zero_()
    ctx = context({"m": OptimizerSlot(torch.optim.SGD(model.parameters(), lr=1.0))}, clip=0.5)
    ctx.optimize((model(torch.full((1, 3), 100.0))).sum())
    assert float(torch.linalg.norm(model.weight.detach())) == pytest.approx(0.5, rel=1e-5)


AUG = {"hflip": 0.5, "rotate_degrees": 15.0, "scale": [0.9, 1.1], "translate": 0.1, "color_jitter": 0.3,
       "random_erasing": 0.5}


def test_geometric_augmentation_keeps_modalities_aligned_and_is_seeded() -> None:
    rgb = torch.rand(6, 3, 24, 24)
    inputs = {"rgb": rgb, "depth": rgb[:, :1].clone()}
    identity = lambda batch: batch  # noqa: E731
    geometric = {**AUG, "color_jitter": 0.0}
    out = augment(dict(inputs), geometric, torch.Generator().manual_seed(1), identity)
    assert torch.allclose(out["rgb"][:, :1], out["depth"], atol=1e-6)
    assert not torch.allclose(out["rgb"], rgb)
    again = augment(dict(inputs), geometric, torch.Generator().manual_seed(1), identity)
    assert torch.equal(out["rgb"], again["rgb"])


def test_loader_covers_rows_once_in_seeded_order() -> None:
    images = np.arange(10 * 4 * 4 * 3, dtype=np.uint8).reshape(10, 4, 4, 3)
    labels = np.arange(10) % 3
    rows = np.array([1, 2, 3, 5, 8, 9])
    norm = Normalizer({"rgb": ([0.0] * 3, [1.0] * 3)}, torch.device("cpu"))
    loader = ArrayBatches({"rgb": images}, labels, rows, 4, torch.device("cpu"), norm, train=True, seed=3)
    seen = [batch.rows.tolist() for batch in loader.epoch(0)]
    assert sorted(sum(seen, [])) == rows.tolist() and [len(s) for s in seen] == [4, 2]
    assert seen == [batch.rows.tolist() for batch in loader.epoch(0)]
    assert seen != [batch.rows.tolist() for batch in loader.epoch(1)]
    batch = next(iter(ArrayBatches({"rgb": images}, labels, rows, 6, torch.device("cpu"), norm).epoch()))
    assert torch.allclose(batch.rgb[0], torch.from_numpy(images[1]).permute(2, 0, 1).float() / 255)
    assert batch.labels.tolist() == labels[rows].tolist()


def test_prefetching_thread_yields_the_inline_batches_and_surfaces_errors() -> None:
    """Accelerators gather in a background thread, the CPU inline: both give the same augmented batches."""
    images = np.random.default_rng(1).integers(0, 256, (10, 8, 8, 3), dtype=np.uint8)
    norm = Normalizer({"rgb": ([0.5] * 3, [0.25] * 3)}, torch.device("cpu"))
    loader = ArrayBatches({"rgb": images}, np.arange(10) % 3, np.arange(10), 3, torch.device("cpu"), norm, train=True,
                          augment_cfg={"hflip": True}, seed=5)
    assert not loader.prefetch
    inline = [(batch.rows.tolist(), batch.rgb) for batch in loader.epoch(2)]
    loader.prefetch = True
    threaded = [(batch.rows.tolist(), batch.rgb) for batch in loader.epoch(2)]
    assert [rows for rows, _ in threaded] == [rows for rows, _ in inline] and len(inline) == 4
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(inline, threaded))
    loader.arrays = {"rgb": images[:4]}  # rows beyond the array: the thread's IndexError reaches the consumer
    with pytest.raises(IndexError):
        list(loader.epoch(0))


def test_layer_decay_finds_the_vit_blocks_when_the_vit_is_wrapped() -> None:
    import timm

    from ferbench.optim import param_groups

    class Wrapped(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.resizer = nn.Conv2d(3, 3, 3, padding=1)
            self.backbone = timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=3,
                                              embed_dim=24, num_heads=2, num_classes=4)

    model = Wrapped()
    groups = param_groups(model, weight_decay=0.05, layer_decay=0.5)
    scale = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert scale[id(named["backbone.pos_embed"])] == 0.5 ** 4  # layer 0 of 3 blocks + top
    assert scale[id(named["backbone.blocks.0.attn.qkv.weight"])] == 0.5 ** 3
    assert scale[id(named["backbone.blocks.2.mlp.fc1.weight"])] == 0.5 ** 1
    assert scale[id(named["backbone.head.weight"])] == scale[id(named["resizer.weight"])] == 1.0
    no_decay = {id(p) for g in groups if g["weight_decay"] == 0 for p in g["params"]}
    assert id(named["backbone.pos_embed"]) in no_decay and id(named["backbone.cls_token"]) in no_decay


@pytest.mark.parametrize("arch", ["resnet18", "efficientnet_b0", "swin_tiny_patch4_window7_224"])
def test_create_backbone_builds_any_timm_architecture_with_other_input_channels(arch: str) -> None:
    from ferbench_plugins.common.backbones import create_backbone

    kwargs = {"img_size": 32, "embed_dim": 24, "depths": (1, 1), "num_heads": (1, 2), "window_size": 4} \
        if arch.startswith("swin") else {}
    model = create_backbone(arch, 5, in_chans=1, **kwargs)
    assert model(torch.rand(2, 1, 32, 32)).shape == (2, 5)
