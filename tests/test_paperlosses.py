"""The paper losses (scl, mscl, pdls, f-pdls) against hand computations, their mixing, and every registered
loss training vit-baseline."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

from conftest import data_info, one_training_step, planned_config, random_batch
from ferbench.errors import UsageError
from ferbench.losses import Loss, LossInput, MixInfo
from ferbench.plugins import registry
from ferbench.specs import load_object
from ferbench_plugins.paperlosses.mixing import mix_views


def make_loss(name: str, info: Any = None, **options: Any) -> Loss:
    """Loss ``name`` with its registered defaults overridden by ``options``."""
    spec = registry().loss(name)
    return load_object(spec.factory)({**spec.options, **options}, info or data_info(3))


def unit(*pairs: tuple[float, float]) -> torch.Tensor:
    return torch.tensor(pairs, dtype=torch.float32)


def lse(*values: float) -> float:
    return math.log(sum(math.exp(v) for v in values))


# --- scl -------------------------------------------------------------------------------------------------

def test_scl_matches_a_hand_computation_with_an_anchor_without_positives() -> None:
    loss = make_loss("scl", projection="none", temperature=0.5, weight=0.1)
    z = unit((1, 0), (0.6, 0.8), (-1, 0), (0, -1))  # labels 0, 0, 1, 2: anchors 2 and 3 have no positive
    terms = loss(LossInput(logits=torch.zeros(4, 3), labels=torch.tensor([0, 0, 1, 2]), features=z))
    # z.z / t: s01 = 1.2, s02 = -2, s03 = 0, s12 = -1.2, s13 = -1.6
    anchor0 = -(1.2 - lse(1.2, -2.0, 0.0))
    anchor1 = -(1.2 - lse(1.2, -1.2, -1.6))
    expected = (anchor0 + anchor1) / 2
    assert terms["scl"].item() == pytest.approx(expected, rel=1e-5)
    assert terms["ce"].item() == pytest.approx(math.log(3), rel=1e-6)
    assert terms["loss"].item() == pytest.approx(math.log(3) + 0.1 * expected, rel=1e-5)


def test_scl_without_any_positive_is_zero_and_keeps_gradients_finite() -> None:
    loss = make_loss("scl", projection="none")
    z = unit((1, 0), (0, 1), (-1, 0)).requires_grad_(True)
    terms = loss(LossInput(logits=torch.zeros(3, 3, requires_grad=True), labels=torch.tensor([0, 1, 2]), features=z))
    terms["loss"].backward()
    assert terms["scl"].item() == 0.0
    assert torch.isfinite(z.grad).all()


def test_projection_head_needs_the_feature_width_and_is_trained_with_the_model() -> None:
    with pytest.raises(Exception, match="never sized"):
        make_loss("scl")(LossInput(logits=torch.zeros(2, 3), labels=torch.tensor([0, 0]), features=torch.randn(2, 8)))
    config = planned_config("vit-baseline", loss__name="scl", data__image_size=16, model__patch_size=8, model__depth=1)
    method = load_object(registry().method("vit-baseline").factory)(config, data_info(3, 16))
    dense = method.loss.projection
    assert [type(layer).__name__ for layer in dense] == ["Linear", "ReLU", "Linear"]
    assert dense[0].in_features == method.backbone.num_features and dense[2].out_features == 128
    before = [p.detach().clone() for p in dense.parameters()]
    one_training_step(method, random_batch(6, 16, 3, views=2))
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in dense.parameters())
    assert all(not torch.equal(old, new) for old, new in zip(before, dense.parameters()))


# --- mscl ------------------------------------------------------------------------------------------------

def _clean_and_mixed() -> LossInput:
    """One clean and one mixed view of two images (labels 0 and 1, mixed with each other at lam 0.7)."""
    z = unit((1, 0), (-1, 0), (0.6, 0.8), (-0.6, 0.8))  # rows: clean 0, clean 1, mix (0.7, 0.3), mix (0.3, 0.7)
    logits = torch.tensor([[2.0, 0.0], [0.0, 0.0], [5.0, -5.0], [-5.0, 5.0]])
    mix = MixInfo(partner=torch.tensor([1, 0]), lam=torch.tensor([0.7, 0.7]))
    return LossInput(logits=logits, labels=torch.tensor([0, 1]), features=z, views=2, mix=mix)


def test_mscl_matches_a_hand_computation_on_clean_and_mixed_views() -> None:
    loss = make_loss("mscl", info=data_info(2), projection="none", temperature=1.0, weight=0.5)
    terms = loss(_clean_and_mixed())
    # total-variation distances: clean 0 - mix (0.7, 0.3) = 0.3 and mix - mix = 0.4 are positives (< 0.5),
    # clean 0 - clean 1 = 1 and clean 0 - mix (0.3, 0.7) = 0.7 are negatives
    anchor0 = -(0.6 - lse(-1.0, 0.6, -0.6))  # clean 0: positive mix 0; anchor 1 is its mirror image
    mixed_lse = lse(0.6, -0.6, 0.28)
    anchor2 = -((0.6 - mixed_lse) + (0.28 - mixed_lse)) / 2  # mix 0: positives clean 0 and mix 1; anchor 3 mirrors it
    expected = (anchor0 + anchor2) / 2
    ce_clean = (math.log(1 + math.exp(-2.0)) + math.log(2.0)) / 2  # cross-entropy on the clean views only
    assert terms["mscl"].item() == pytest.approx(expected, rel=1e-5)
    assert terms["ce"].item() == pytest.approx(ce_clean, rel=1e-5)
    assert terms["loss"].item() == pytest.approx(ce_clean + 0.5 * expected, rel=1e-5)


def test_mscl_visual_similarity_leaves_label_close_but_dissimilar_pairs_out() -> None:
    loss = make_loss("mscl", info=data_info(2), projection="none", temperature=1.0, visual_similarity="cosine",
                     similarity_threshold=0.5)
    terms = loss(_clean_and_mixed())
    # the two mixes (distance 0.4, cosine 0.28) are neither positive nor negative any more
    anchor0 = -(0.6 - lse(-1.0, 0.6, -0.6))
    anchor2 = -(0.6 - lse(0.6, -0.6))
    assert terms["mscl"].item() == pytest.approx((anchor0 + anchor2) / 2, rel=1e-5)


def test_mscl_with_l1_distance_finds_no_positive_and_stays_finite() -> None:
    loss = make_loss("mscl", info=data_info(2), projection="none", distance="l1")  # distances 0.6, 0.8, ... >= 0.5
    inp = _clean_and_mixed()
    inp.features.requires_grad_(True)
    terms = loss(inp)
    terms["loss"].backward()
    assert terms["mscl"].item() == 0.0 and torch.isfinite(inp.features.grad).all()


def test_mscl_mixed_label_rule_on_mixed_views_only() -> None:
    # labels 0, 0, 1, 2 mixed at lam 0.8 with partners 1, 2, 0, 3:
    # rows e0 (case 1), (0.8, 0.2, 0) (case 2: distance 0.2 to row 0), (0.2, 0.8, 0), e2
    inp = LossInput(logits=torch.zeros(4, 3), labels=torch.tensor([0, 0, 1, 2]),
                    features=unit((1, 0), (0, 1), (-1, 0), (0, -1)),
                    mix=MixInfo(partner=torch.tensor([1, 2, 0, 3]), lam=torch.full((4,), 0.8)))
    loss = make_loss("mscl", projection="none", temperature=1.0, contrast_set="mixed", ce_on="mixed")
    targets, is_clean = loss.targets(inp)
    assert not is_clean.any()
    assert torch.allclose(targets, torch.tensor([[1.0, 0, 0], [0.8, 0.2, 0], [0.2, 0.8, 0], [0, 0, 1.0]]))
    positive, _ = loss.pair_masks(targets, inp.features)
    assert positive.nonzero().tolist() == [[0, 1], [1, 0]]  # rows 1-2 (distance 0.6, case 3) are negatives
    terms = loss(inp)
    assert terms["mscl"].item() == pytest.approx(lse(0.0, -1.0, 0.0), rel=1e-5)  # anchors 2, 3: no positive
    assert terms["ce"].item() == pytest.approx(math.log(3), rel=1e-6)
    wider = make_loss("mscl", projection="none", contrast_set="mixed", ce_on="mixed", threshold=0.7)
    assert wider.pair_masks(targets, inp.features)[0].nonzero().tolist() == [[0, 1], [1, 0], [1, 2], [2, 1]]


def test_mscl_refuses_cross_entropy_on_clean_views_it_dropped() -> None:
    with pytest.raises(UsageError, match="ce_on=clean"):
        make_loss("mscl", contrast_set="mixed", ce_on="clean")


def test_mscl_prepare_adds_the_mixed_views() -> None:
    batch = random_batch(4, 8, 3, views=2)
    torch.manual_seed(0)
    prepared, mix = make_loss("mscl").prepare(batch)
    assert len(prepared.views) == 4 and prepared.views[:2] == batch.views and mix is not None
    prepared, _ = make_loss("mscl", contrast_set="mixed", ce_on="mixed").prepare(batch)
    assert len(prepared.views) == 2 and not torch.equal(prepared.views[0]["rgb"], batch.views[0]["rgb"])


# --- mixing ----------------------------------------------------------------------------------------------

def _views(seed: int = 0) -> list[dict[str, torch.Tensor]]:
    images = torch.randn(6, 3, 10, 10, generator=torch.Generator().manual_seed(seed))
    return [{"rgb": images}, {"rgb": images + 1.0}]


def test_mixing_is_reproducible_under_a_seed() -> None:
    draws = []
    for seed in (5, 5, 6):
        torch.manual_seed(seed)
        draws.append(mix_views(_views(), alpha=1.0, cutmix_prob=0.5))
    (first, mix1), (again, mix2), (other, mix3) = draws
    assert torch.equal(first[0]["rgb"], again[0]["rgb"]) and torch.equal(mix1.partner, mix2.partner)
    assert torch.equal(mix1.lam, mix2.lam)
    assert not torch.equal(first[0]["rgb"], other[0]["rgb"])


def test_mixup_blends_every_view_with_one_partner_and_coefficient() -> None:
    views = _views()
    torch.manual_seed(1)
    mixed, mix = mix_views(views, alpha=0.4, cutmix_prob=0.0)
    lam = mix.lam[0].item()
    assert 0.0 < lam < 1.0 and torch.all(mix.lam == lam)
    for view, out in zip(views, mixed):
        assert torch.allclose(out["rgb"], lam * view["rgb"] + (1 - lam) * view["rgb"][mix.partner], atol=1e-6)


def test_cutmix_pastes_the_partner_box_and_reports_the_kept_area() -> None:
    views = _views()
    for seed in range(5):
        torch.manual_seed(seed)
        mixed, mix = mix_views(views, alpha=1.0, cutmix_prob=1.0)
        own = views[0]["rgb"]
        from_own = (mixed[0]["rgb"] == own).all(dim=1)  # [B, H, W] pixels kept from the row's own image
        from_partner = (mixed[0]["rgb"] == own[mix.partner]).all(dim=1)
        assert (from_own | from_partner).all()
        changed = (mix.partner != torch.arange(6))
        kept = from_own[changed].float().mean(dim=(1, 2))
        assert torch.allclose(kept, mix.lam[changed], atol=1e-6)
        assert torch.allclose(mixed[1]["rgb"], mixed[0]["rgb"] + 1.0)  # same box in every view


# --- pdls / f-pdls ---------------------------------------------------------------------------------------

PRIOR = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.25, 0.25, 0.5]])


def _hand_prior_loss(logits: list[list[float]], labels: list[int], alpha: float, gamma: float) -> float:
    total = 0.0
    for row, label in zip(logits, labels):
        norm = sum(math.exp(v) for v in row)
        for c, value in enumerate(row):
            p = math.exp(value) / norm
            q = alpha * (c == label) + (1 - alpha) * PRIOR[label][c]
            total -= (1 - p) ** gamma * q * math.log(p)
    return total / len(labels)


@pytest.mark.parametrize("name, gamma", [("pdls", 0.0), ("f-pdls", 2.0)])
def test_prior_label_smoothing_matches_a_hand_computation(name: str, gamma: float) -> None:
    logits, labels = [[1.0, 0.0, -1.0], [0.5, 0.5, 0.0]], [0, 2]
    loss = make_loss(name, info=data_info(3, prior=PRIOR), prior="votes")
    value = loss(LossInput(logits=torch.tensor(logits), labels=torch.tensor(labels)))["loss"].item()
    assert value == pytest.approx(_hand_prior_loss(logits, labels, 0.8, gamma), rel=1e-5)


def test_f_pdls_focal_factor_weighs_confident_classes_down() -> None:
    loss = make_loss("f-pdls", info=data_info(3, prior=PRIOR))
    confident = loss(LossInput(logits=torch.tensor([[6.0, 0.0, 0.0]]), labels=torch.tensor([0])))["loss"]
    plain = make_loss("pdls", info=data_info(3, prior=PRIOR))(
        LossInput(logits=torch.tensor([[6.0, 0.0, 0.0]]), labels=torch.tensor([0])))["loss"]
    assert 0 < confident.item() < plain.item()


def test_prior_comes_from_the_dataset_votes_or_a_uniform_estimate() -> None:
    with_votes = make_loss("f-pdls", info=data_info(3, prior=PRIOR * 10))  # auto: the dataset's votes, normalised
    assert torch.allclose(with_votes.targets(torch.tensor([2])), torch.tensor([[0.05, 0.05, 0.9]]))
    without = make_loss("f-pdls", info=data_info(3))  # auto without votes: the mass spread over the other classes
    assert torch.allclose(without.targets(torch.tensor([0])), torch.tensor([[0.8, 0.1, 0.1]]))
    uniform = make_loss("pdls", info=data_info(3, prior=PRIOR), prior="uniform")
    assert torch.allclose(uniform.targets(torch.tensor([1])), torch.tensor([[0.1, 0.8, 0.1]]))
    with pytest.raises(UsageError, match="loss.prior=votes needs a dataset with vote distributions"):
        make_loss("pdls", info=data_info(3), prior="votes")
    with pytest.raises(UsageError, match="shape"):
        make_loss("pdls", info=data_info(3, prior=np.ones((2, 2))), prior="votes")


# --- every registered loss with a ClassifierMethod -------------------------------------------------------

@pytest.mark.parametrize("name", sorted(registry().losses))
def test_vit_baseline_trains_one_step_with_every_registered_loss(name: str) -> None:
    torch.manual_seed(0)
    config = planned_config("vit-baseline", loss__name=name, data__image_size=16, model__patch_size=8, model__depth=1)
    method = load_object(registry().method("vit-baseline").factory)(config, data_info(3, 16))
    terms = one_training_step(method, random_batch(6, 16, 3, views=registry().loss(name).views))
    assert set(terms) >= {"loss"} and all(torch.isfinite(value) for value in terms.values())
    assert all(p.grad is not None for p in method.backbone.head.parameters())
