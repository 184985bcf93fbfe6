"""PF-ViT: component shapes, each loss against a hand computation, the adversarial step, the predict path."""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
from conftest import data_info, method_config, step_context, weights_file

from ferbench.errors import UsageError
from ferbench.method import Batch
from ferbench_plugins.common.mae import transformer_blocks
from ferbench_plugins.pfvit.components import CrossFusion, Separator, separate
from ferbench_plugins.pfvit.face_features import FrozenFaceFeatures
from ferbench_plugins.pfvit.inception_resnet_v1 import InceptionResnetV1
from ferbench_plugins.pfvit.losses import (abs_cosine, discrimination_loss, discriminator_targets,
                                           generator_adversarial_loss, orthogonality, reconstruction_loss)
from ferbench_plugins.pfvit.model import DISC_SLOT, PFViT

SIZE = 32  # 16 patches of 8 pixels
CLASSES = ("happiness", "neutral", "sadness", "anger")  # neutral deliberately not first
NEUTRAL = 1


def tiny_pfvit(overrides: dict[str, Any] | None = None, classes: tuple[str, ...] = CLASSES) -> PFViT:
    torch.manual_seed(0)
    config = method_config("pfvit", "tiny", {"data.image_size": SIZE, "model.depth": 2, **(overrides or {})})
    return PFViT(config, data_info(classes, image_size=SIZE))


def batch(labels: list[int]) -> Batch:
    generator = torch.Generator().manual_seed(2)
    images = torch.randn(len(labels), 3, SIZE, SIZE, generator=generator)
    return Batch(views=[{"rgb": images}], labels=torch.tensor(labels), rows=torch.arange(len(labels)))


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def changed(model: torch.nn.Module, before: dict[str, torch.Tensor]) -> set[str]:
    return {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}


# --- losses against hand computations -----------------------------------------------------------
def test_discriminator_targets_follow_eq8() -> None:
    labels = torch.tensor([2, 0])
    assert discriminator_targets(labels, 3, real=True).tolist() == [[0, 0, 1, 1], [1, 0, 0, 1]]
    assert discriminator_targets(labels, 3, real=False).tolist() == [[0, 0, 1, 0], [1, 0, 0, 0]]


def test_discrimination_loss_sums_binary_cross_entropy_over_units() -> None:
    logits = torch.tensor([[2.0, -1.0], [0.0, 0.0]])
    targets = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    first = math.log1p(math.exp(-2)) + math.log1p(math.exp(1))  # -log s(2) - log s(-1)
    second = 2 * math.log(2)
    assert discrimination_loss(logits, targets).item() == pytest.approx((first + second) / 2, rel=1e-6)


def test_generator_adversarial_loss_nonsaturating_and_minimax() -> None:
    logits, targets = [torch.tensor([[2.0, -1.0]])], [torch.tensor([[1.0, 0.0]])]
    judged_real = math.log1p(math.exp(-2)) + math.log1p(math.exp(1))
    judged_fake = math.log1p(math.exp(-2)) + math.log1p(math.exp(-1))
    assert generator_adversarial_loss(logits, targets, "nonsaturating").item() == pytest.approx(judged_real, rel=1e-6)
    assert generator_adversarial_loss(logits, targets, "minimax").item() == pytest.approx(-judged_fake, rel=1e-6)


def test_reconstruction_loss_counts_the_poker_face_of_neutral_samples_only() -> None:
    target = torch.zeros(2, 1, 2)
    rec = torch.tensor([[[1.0, 1.0]], [[2.0, 0.0]]])
    poker = torch.tensor([[[3.0, 4.0]], [[5.0, 5.0]]])
    neutral = torch.tensor([True, False])
    mse = reconstruction_loss(rec, poker, target, neutral, "mse")
    assert [t.item() for t in mse] == pytest.approx([(1 + 2) / 2, (12.5 + 0) / 2])
    l2 = reconstruction_loss(rec, poker, target, neutral, "l2")
    assert [t.item() for t in l2] == pytest.approx([(math.sqrt(2) + 2) / 2, 5 / 2])


def test_orthogonality_per_token_and_per_sample() -> None:
    v_e = torch.tensor([[[1.0, 0.0], [1.0, 1.0]]])
    v_p = torch.tensor([[[0.0, 1.0], [1.0, 0.0]]])
    assert orthogonality(v_e, v_p, "token").item() == pytest.approx((0 + 1 / math.sqrt(2)) / 2)
    assert orthogonality(v_e, v_p, "sample").item() == pytest.approx(1 / math.sqrt(6))
    assert abs_cosine(torch.tensor([1.0, 0.0]), torch.tensor([-2.0, 0.0])).item() == pytest.approx(1.0)


# --- components ---------------------------------------------------------------------------------
def test_separator_mask_shapes_and_split() -> None:
    tokens = torch.randn(2, 5, 16)
    channel, token = Separator(16, 4, per_token=False)(tokens), Separator(16, 4, per_token=True)(tokens)
    assert channel.shape == (2, 1, 16) and token.shape == (2, 5, 16)
    assert bool(((channel > 0) & (channel < 1)).all())
    emotion, poker = separate(tokens, channel)
    assert torch.allclose(emotion + poker, tokens) and torch.allclose(emotion, tokens * channel)


def test_cross_fusion_copied_from_a_block_equals_it_on_self_attention() -> None:
    block = transformer_blocks(32, 1, 4, 2.0)[0]
    fusion = CrossFusion(32, 4, 2.0)
    fusion.copy_block(block)
    x = torch.randn(2, 6, 32)
    assert torch.allclose(fusion(x, x), block(x), atol=1e-5)
    assert fusion(torch.randn(2, 3, 32), x).shape == (2, 3, 32)


def test_shapes_of_every_component() -> None:
    model = tiny_pfvit()
    images = batch([0, 1, 2]).rgb
    split = model.separate(images)
    assert split.tokens.shape == split.emotion.shape == split.poker.shape == (3, 17, 96)
    reconstruction, poker = model.generate([split.tokens, split.poker], None)
    assert reconstruction.shape == poker.shape == (3, 16, 8 * 8 * 3)
    assert model.image(poker).shape == images.shape
    assert model.discriminator(images).shape == (3, len(CLASSES) + 1)
    assert model.predict(batch([0, 1, 2])).shape == (3, len(CLASSES))
    direct = tiny_pfvit({"model.cross_fusion": False})
    assert direct.generator.fusion is None and direct.generate([split.poker], None)[0].shape == (3, 16, 192)


def test_discriminator_and_fusion_start_as_copies() -> None:
    model = tiny_pfvit()
    decoder, disc = model.generator.decoder, model.discriminator
    assert torch.equal(disc.decoder_blocks[0].attn.qkv.weight, decoder.decoder_blocks[0].attn.qkv.weight)
    assert torch.equal(disc.patch_embed.proj.weight, model.encoder.patch_embed.proj.weight)
    assert torch.equal(model.generator.fusion.mlp.fc1.weight, decoder.decoder_blocks[0].mlp.fc1.weight)
    assert not torch.equal(tiny_pfvit({"model.fusion_init": "random"}).generator.fusion.mlp.fc1.weight,
                           decoder.decoder_blocks[0].mlp.fc1.weight)


# --- training -----------------------------------------------------------------------------------
def spy_optimize(model: PFViT, ctx: Any, measure: Callable[[], float] | None = None) -> list[tuple]:
    """Record, for every ``ctx.optimize`` call, the slots, the parameters it changed and ``measure`` around it."""
    calls: list[tuple] = []
    original = ctx.optimize

    def optimize(loss: torch.Tensor, *names: str) -> None:
        before, value = snapshot(model), measure() if measure else None
        original(loss, *names)
        calls.append((names, changed(model, before), value, measure() if measure else None))

    ctx.optimize = optimize
    return calls


def test_each_optimizer_changes_only_its_own_parameters() -> None:
    model = tiny_pfvit()
    model.face = FrozenFaceFeatures("resnet18", [0.5] * 3, [0.25] * 3)
    ctx = step_context(model.configure_optimizers())
    calls = spy_optimize(model, ctx)
    logs = model.training_step(batch([0, 1, 2, 1]), ctx)
    (disc_slots, disc_changed, *_), (model_slots, model_changed, *_) = calls
    assert disc_slots == (DISC_SLOT,) and model_slots[0] == "model"
    assert disc_changed and all(name.startswith("discriminator.") for name in disc_changed)
    assert {name.split(".")[0] for name in model_changed} == {"encoder", "separator", "classifier", "generator"}
    assert logs["face_orth"] > 0 and logs["poker"] > 0


def adversarial_losses(model: PFViT, data: Batch) -> tuple[float, float]:
    """(D's loss, E/S/G's adversarial loss) on a fixed batch, as ``training_step`` computes them."""
    with torch.no_grad():
        split = model.separate(data.rgb)
        fakes = [model.image(patches) for patches in model.generate([split.tokens, split.poker], None)]
        neutral = torch.full_like(data.labels, NEUTRAL)
        targets = [discriminator_targets(labels, len(CLASSES), real=False) for labels in (data.labels, neutral)]
        loss_d = model.discriminator_loss(data.rgb, data.labels, fakes, targets)
        adv = generator_adversarial_loss(model.discriminate(fakes), targets, "nonsaturating")
    return loss_d.item(), adv.item()


def test_one_adversarial_step_moves_both_players_losses_down() -> None:
    only_adversarial = {f"pfvit.lambda.{term}": 0.0 for term in ("emo", "rec", "orth", "face_orth")}
    model = tiny_pfvit({**only_adversarial, "optim.lr": 1e-4, "disc_optim.lr": 1e-4})
    data = batch([0, 1, 2, 3, 1, 0])
    ctx = step_context(model.configure_optimizers())
    calls = spy_optimize(model, ctx, lambda: adversarial_losses(model, data))
    model.training_step(data, ctx)
    (_, _, (d_before, _), (d_after, _)), (_, _, (_, g_before), (_, g_after)) = calls
    assert d_after < d_before
    assert g_after < g_before


def test_prediction_runs_without_generator_discriminator_or_feature_network() -> None:
    model = tiny_pfvit()
    model.face = FrozenFaceFeatures("resnet18", [0.5] * 3, [0.25] * 3)

    def refuse(*_: Any) -> None:
        raise AssertionError("used at prediction")

    for part in (model.generator, model.discriminator, model.face):
        part.register_forward_pre_hook(refuse)
    model.eval()
    model.predict(batch([0, 1])).sum().backward()
    assert all(p.grad is None for p in model.generator.parameters())
    assert model.encoder.patch_embed.proj.weight.grad is not None
    evaluated = {id(p) for m in model.evaluated_modules() for p in m.parameters()}
    assert not evaluated & {id(p) for p in [*model.generator.parameters(), *model.discriminator.parameters()]}
    def count(*modules: torch.nn.Module) -> int:
        return sum(p.numel() for m in modules for p in m.parameters())

    parts = count(*model.evaluated_modules()) + count(model.generator, model.discriminator, model.face)
    assert parts == count(model)


def test_neutral_comes_from_the_class_names() -> None:
    model = tiny_pfvit()
    assert model.neutral == NEUTRAL
    ctx = step_context(model.configure_optimizers())
    assert model.training_step(batch([0, 2, 3]), ctx)["poker"] == 0
    with pytest.raises(UsageError, match="neutral"):
        tiny_pfvit(classes=("happiness", "sadness"))


def test_feature_network_stays_frozen_in_evaluation_mode() -> None:
    face = FrozenFaceFeatures("resnet18", [0.5] * 3, [0.25] * 3)
    face.train()
    assert not face.net.training and not any(p.requires_grad for p in face.parameters())
    images = torch.randn(2, 3, SIZE, SIZE, requires_grad=True)
    face(images).sum().backward()
    assert images.grad is not None and face.net.fc.__class__.__name__ == "Identity"


def test_multitask_mae_variant_masks_training_inputs_only() -> None:
    model = tiny_pfvit({"model.variant": "multitask-mae", "model.train_mask_ratio": 0.75,
                        "model.test_mask_ratio": 0.0})
    model.train()
    split = model.separate(batch([0, 1]).rgb)
    assert split.tokens.shape == (2, 1 + 4, 96) and split.ids_restore is not None
    assert model.generate([split.poker], split.ids_restore)[0].shape == (2, 16, 192)
    model.eval()
    assert model.separate(batch([0, 1]).rgb).tokens.shape == (2, 17, 96)
    model.train()
    logs = model.training_step(batch([0, 1, 2]), step_context(model.configure_optimizers()))
    assert torch.isfinite(logs["loss"])


def test_image_grid_rows() -> None:
    model = tiny_pfvit()
    model.eval()
    grid = model.images(batch([0, 1, 2]))["poker_face"]
    assert grid.dtype.name == "uint8" and grid.shape == (4 * (SIZE + 2) + 2, 3 * (SIZE + 2) + 2, 3)


def test_a_pretrained_feature_network_needs_its_weights() -> None:
    with pytest.raises(UsageError, match="model.face_weights"):
        tiny_pfvit({"model.face_net": "inception_resnet_v1"})


def test_initialisation_from_an_mae_export(tmp_path: Path) -> None:
    from ferbench_plugins.mae.model import MaskedAutoencoder

    torch.manual_seed(5)
    mae = MaskedAutoencoder(method_config("mae", "tiny", {"data.image_size": SIZE, "model.depth": 2}),
                            data_info(image_size=SIZE))
    state = mae.export_state_dict()
    weights = weights_file(state, tmp_path / "mae.safetensors")
    config = method_config("pfvit", "tiny", {"data.image_size": SIZE, "model.depth": 2, "model.weights": weights.ref})
    model = PFViT(config, data_info(CLASSES, image_size=SIZE, weights={"model.weights": weights}))
    assert torch.equal(model.encoder.blocks[1].mlp.fc2.weight, state["blocks.1.mlp.fc2.weight"])
    assert torch.equal(model.generator.decoder.mask_token, state["mask_token"])
    assert torch.equal(model.discriminator.decoder_blocks[0].attn.proj.weight, state["decoder_blocks.0.attn.proj.weight"])
    assert torch.equal(model.generator.fusion.attn.qkv.weight, state["decoder_blocks.0.attn.qkv.weight"])
    encoder_only = weights_file({k: v for k, v in state.items() if not k.startswith(("decoder_", "mask_token"))},
                                tmp_path / "encoder.safetensors")
    with pytest.raises(UsageError, match="holds no MAE decoder"):
        PFViT(method_config("pfvit", "tiny", {"data.image_size": SIZE, "model.depth": 2,
                                              "model.decoder_weights": encoder_only.ref}),
              data_info(CLASSES, image_size=SIZE, weights={"model.decoder_weights": encoder_only}))


def test_kept_weights_leave_out_the_feature_network_and_load_back() -> None:
    model = tiny_pfvit()
    model.face = FrozenFaceFeatures("resnet18", [0.5] * 3, [0.25] * 3)
    kept = model.export_state_dict()
    assert kept and not any(name.startswith("face.") for name in kept)
    other = tiny_pfvit()
    other.face = FrozenFaceFeatures("resnet18", [0.5] * 3, [0.25] * 3)
    other.import_state_dict(kept)
    assert torch.equal(other.classifier.weight, model.classifier.weight)


# --- Inception-ResNet-V1 (FaceNet) ----------------------------------------------------------------
#: Tensors of facenet-pytorch's InceptionResnetV1(pretrained="vggface2") state dict, with their shapes.
FACENET_TENSORS = {
    "conv2d_1a.conv.weight": (32, 3, 3, 3), "conv2d_1a.bn.running_mean": (32,), "conv2d_4b.conv.weight": (256, 192, 3, 3),
    "repeat_1.0.branch0.conv.weight": (32, 256, 1, 1), "repeat_1.4.branch2.2.conv.weight": (32, 32, 3, 3),
    "repeat_1.0.conv2d.weight": (256, 96, 1, 1), "repeat_1.0.conv2d.bias": (256,),
    "mixed_6a.branch1.2.conv.weight": (256, 192, 3, 3), "repeat_2.9.branch1.2.conv.weight": (128, 128, 7, 1),
    "mixed_7a.branch2.2.conv.weight": (256, 256, 3, 3), "repeat_3.4.branch1.1.conv.weight": (192, 192, 1, 3),
    "block8.conv2d.weight": (1792, 384, 1, 1), "last_linear.weight": (512, 1792), "last_bn.running_mean": (512,),
    "last_bn.num_batches_tracked": (), "logits.weight": (8631, 512), "logits.bias": (8631,),
}
FACENET_MODULES = re.compile(r"(conv2d_(1a|2a|2b|3b|4a|4b)|repeat_1\.[0-4]|repeat_2\.\d|repeat_3\.[0-4]|mixed_6a|mixed_7a|"
                             r"block8|last_linear|last_bn|logits)\.")


def test_inception_resnet_v1_has_facenet_pytorch_names() -> None:
    state = InceptionResnetV1(num_classes=8631).state_dict()
    assert {name: tuple(state[name].shape) for name in FACENET_TENSORS} == FACENET_TENSORS
    assert all(FACENET_MODULES.match(name) for name in state)
    assert "block8.conv2d.bias" in state and not any(name.startswith("repeat_2.10") for name in state)


def test_inception_resnet_v1_embeds_160px_faces_as_unit_vectors() -> None:
    torch.manual_seed(0)
    net = InceptionResnetV1().eval()
    with torch.no_grad():
        embedding = net(torch.randn(2, 3, 160, 160))
    assert embedding.shape == (2, 512)
    assert torch.allclose(embedding.norm(dim=1), torch.ones(2), atol=1e-5)


def test_facenet_weights_load_by_name(tmp_path: Path) -> None:
    published = InceptionResnetV1(num_classes=8631).state_dict()  # stand-in with the published names
    weights = weights_file(published, tmp_path / "vggface2.safetensors")
    config = method_config("pfvit", "tiny", {"data.image_size": SIZE, "model.depth": 2,
                                             "model.face_net": "inception_resnet_v1", "model.face_weights": weights.ref})
    model = PFViT(config, data_info(CLASSES, image_size=SIZE, weights={"model.face_weights": weights}))
    assert torch.equal(model.face.net.repeat_2[3].branch1[1].conv.weight, published["repeat_2.3.branch1.1.conv.weight"])


def test_a_registered_loss_with_its_own_optimizer_trains_beside_both_slots() -> None:
    model = tiny_pfvit({"loss.name": "center"})
    slots = model.configure_optimizers()
    assert {"model", DISC_SLOT} < set(slots) and model.loss_slots
    centres = next(iter(model.loss.parameters())).detach().clone()
    logs = model.training_step(batch([0, 1, 2, 3]), step_context(slots))
    assert torch.isfinite(logs["loss"]) and not torch.equal(next(iter(model.loss.parameters())), centres)


def test_optimizers_and_paper_preset_follow_section_4_2() -> None:
    slots = tiny_pfvit().configure_optimizers()
    disc = slots[DISC_SLOT].optimizer
    assert isinstance(disc, torch.optim.Adam) and disc.defaults["betas"] == (0.5, 0.999)
    assert isinstance(slots["model"].optimizer, torch.optim.Adam)
    paper = method_config("pfvit", "paper")
    assert (paper["optim"]["name"], paper["optim"]["lr"]) == ("adam", 2e-5)
    assert (paper["disc_optim"]["lr"], paper["disc_optim"]["betas"]) == (1e-4, [0.5, 0.999])
    model = paper["model"]
    assert (model["embed_dim"], model["decoder_embed_dim"], model["decoder_depth"], model["decoder_num_heads"]) == (
        768, 512, 8, 16)
    assert model["face_net"] == "inception_resnet_v1" and paper["train"]["batch_size"] == 32
