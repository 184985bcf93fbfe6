"""Focal, centre and island losses against hand computations; the centres' update rules and their slot."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ferbench.config import build_config, method_tree
from ferbench.errors import UsageError
from ferbench.losses import LossInput
from ferbench.method import DataInfo
from ferbench.plugins import registry
from ferbench_plugins.focal_center_island import losses as L

COUNTS = np.array([2, 1, 1])
#: The island loss's defaults: Cai et al.'s form and the thesis's update rule (see the losses' docstring).
L_OPTIONS_ISLAND = {"class_weights": True, "lambda_center": 1e-2, "center_lr": 0.5, "center_update": "rule",
                    "feature_dim": 0, "lambda_island": 10.0, "form": "cai"}


def info(counts: np.ndarray = COUNTS) -> DataInfo:
    return DataInfo(classes=("a", "b", "c")[:len(counts)], modalities=("rgb",), image_size=8,
                    class_counts=counts, steps_per_epoch=1, epochs=1)


def options(name: str, **changes: object) -> dict[str, object]:
    spec = registry().loss(name)
    return {**spec.options, **changes}


def centre_loss(name: str, centers: list[list[float]], **changes: object) -> L.CenterLoss:
    loss = registry().loss(name)
    built = L.CenterLoss if name == "center" else L.IslandLoss
    assert loss.factory.endswith(built.__name__)
    made = built(options(name, feature_dim=len(centers[0]), **changes), info())
    with torch.no_grad():
        made.centers.copy_(torch.tensor(centers))
    return made


LOGITS = torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]])
LABELS = torch.tensor([0, 2])
FEATURES = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
CENTERS = [[0.0, 0.0], [1.0, 1.0], [0.0, 1.0]]


def by_hand_ce(weighted: bool) -> float:
    """Class-weighted CE = sum w_y * nll / sum w_y, with w_c = N / (K n_c) = 4 / (3 n_c)."""
    nll = [-math.log(math.exp(row[y]) / sum(math.exp(v) for v in row))
           for row, y in zip(LOGITS.tolist(), LABELS.tolist())]
    weights = [4 / (3 * COUNTS[y]) if weighted else 1.0 for y in LABELS.tolist()]
    return sum(w * n for w, n in zip(weights, nll)) / sum(weights)


def test_focal_loss_matches_a_hand_computation() -> None:
    rows = LOGITS.tolist()
    p = [math.exp(row[y]) / sum(math.exp(v) for v in row) for row, y in zip(rows, LABELS.tolist())]
    expected = sum(-0.5 * (1 - pi) ** 2 * math.log(pi) for pi in p) / 2
    focal = L.FocalLoss(options("focal", alpha=0.5), info())
    assert focal(LossInput(logits=LOGITS, labels=LABELS))["loss"].item() == pytest.approx(expected, rel=1e-6)
    weighted = L.FocalLoss(options("focal", class_weights=True), info())
    class_w = [4 / (3 * COUNTS[y]) for y in LABELS.tolist()]
    expected_w = sum(-w * (1 - pi) ** 2 * math.log(pi) for w, pi in zip(class_w, p)) / 2
    assert weighted(LossInput(logits=LOGITS, labels=LABELS))["loss"].item() == pytest.approx(expected_w, rel=1e-6)
    at_gamma0 = L.FocalLoss(options("focal", gamma=0.0), info())  # gamma 0, alpha 1: plain CE
    assert at_gamma0(LossInput(logits=LOGITS, labels=LABELS))["loss"].item() == pytest.approx(by_hand_ce(False))


def test_center_loss_is_weighted_ce_plus_half_mean_squared_distance() -> None:
    loss = centre_loss("center", CENTERS, lambda_center=0.1)
    terms = loss(LossInput(logits=LOGITS, labels=LABELS, features=FEATURES))
    # sample 0 (class 0): ||(1,0)-(0,0)||^2 = 1; sample 1 (class 2): ||(0,3)-(0,1)||^2 = 4
    assert terms["center"].item() == pytest.approx(0.5 * (1 + 4) / 2)
    assert terms["ce"].item() == pytest.approx(by_hand_ce(True), rel=1e-6)
    assert terms["loss"].item() == pytest.approx(by_hand_ce(True) + 0.1 * 1.25, rel=1e-6)
    plain = centre_loss("center", CENTERS, class_weights=False)
    assert plain(LossInput(logits=LOGITS, labels=LABELS, features=FEATURES))["ce"].item() == pytest.approx(
        by_hand_ce(False), rel=1e-6)


def test_island_term_and_the_two_forms() -> None:
    # centres at 0, 90 and 45 degrees: cos = 0, 1/sqrt2, 1/sqrt2 for the three pairs, each counted twice
    centers = [[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]
    island = 2 * ((0 + 1) + (2 ** -0.5 + 1) + (2 ** -0.5 + 1))
    cai = centre_loss("island", centers, lambda_center=0.01, lambda_island=10.0)
    thesis = centre_loss("island", centers, lambda_center=0.01, lambda_island=10.0, form="thesis")
    inp = LossInput(logits=LOGITS, labels=LABELS, features=FEATURES)
    a, b = cai(inp), thesis(inp)
    assert a["island"].item() == pytest.approx(island, rel=1e-6) == b["island"].item()
    center = 0.5 * ((0 ** 2 + 0 ** 2) + (1 ** 2 + 2 ** 2)) / 2  # (1,0)-(1,0) and (0,3)-(1,1)
    assert a["center"].item() == pytest.approx(center, rel=1e-6)
    ce = by_hand_ce(True)
    assert a["loss"].item() == pytest.approx(ce + 0.01 * (center + 10 * island), rel=1e-6)
    assert b["loss"].item() == pytest.approx(ce + 0.01 * center + 10 * island, rel=1e-6)
    assert (b["loss"] - ce).item() / (a["loss"] - ce).item() > 50  # the island term is ~100x heavier


def step_centres(loss: L.CenterLoss, inp: LossInput) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of the loss's own centre optimizer; returns (centres before, feature gradient)."""
    before = loss.centers.detach().clone()
    features = inp.features.clone().requires_grad_(True)
    slot = loss.own_slots()[L.CENTER_SLOT]
    slot.optimizer.zero_grad()
    loss(LossInput(logits=inp.logits, labels=inp.labels, features=features))["loss"].backward()
    slot.optimizer.step()
    return before, features.grad


def test_rule_update_moves_each_centre_as_eq_2_17_and_features_see_fixed_centres() -> None:
    features = torch.tensor([[2.0, 0.0], [4.0, 0.0], [0.0, 5.0]])
    labels = torch.tensor([0, 0, 1])
    loss = centre_loss("center", [[0.0, 0.0], [0.0, 1.0], [3.0, 3.0]], lambda_center=0.01, center_lr=0.5)
    before, feature_grad = step_centres(loss, LossInput(logits=torch.zeros(3, 3), labels=labels, features=features))
    # dc_0 = ((0-2) + (0-4)) / (1 + 2) = -2; dc_1 = (1-5)/(1+1) = -2 (y only); c_2 has no sample
    expected = torch.tensor([[0.0 + 0.5 * 2, 0.0], [0.0, 1.0 + 0.5 * 2], [3.0, 3.0]])
    assert torch.allclose(loss.centers.detach(), expected)
    for j, members in ((0, [0, 1]), (1, [2])):
        mean = features[members].mean(0)
        assert (loss.centers[j] - mean).norm() < (before[j] - mean).norm()
    # the network is pulled to the (fixed) centres with weight lambda: d/dx 0.01 * 1/2 mean ||x - c||^2
    assert torch.allclose(feature_grad, 0.01 * (features - before[labels]) / 3, atol=1e-7)


def test_gradient_update_steps_centres_on_the_weighted_loss_gradient() -> None:
    features = torch.tensor([[2.0, 0.0], [4.0, 0.0]])
    loss = centre_loss("center", [[0.0, 0.0], [0.0, 1.0], [3.0, 3.0]], lambda_center=0.01, center_lr=0.5,
                       center_update="gradient")
    step_centres(loss, LossInput(logits=torch.zeros(2, 3), labels=torch.tensor([0, 0]), features=features))
    # grad c_0 = 0.01 * ((0-2) + (0-4)) / 2 = -0.03 -> c_0 = 0.5 * 0.03 = 0.015
    assert torch.allclose(loss.centers.detach()[0], torch.tensor([0.015, 0.0]))


def test_rule_update_of_the_island_term_pushes_centres_apart_by_the_forms_ratio() -> None:
    centers = [[1.0, 0.1], [1.0, -0.1], [-1.0, 0.0]]
    inp = LossInput(logits=torch.zeros(1, 3), labels=torch.tensor([2]), features=torch.tensor([[-1.0, 0.0]]))
    moved = {}
    for form in ("cai", "thesis"):
        loss = centre_loss("island", centers, form=form, lambda_center=0.01, lambda_island=10.0)
        before, _ = step_centres(loss, inp)
        moved[form] = (loss.centers.detach() - before)[:2]
        if form == "cai":
            assert torch.cosine_similarity(loss.centers[0], loss.centers[1], dim=0) < torch.cosine_similarity(
                before[0], before[1], dim=0)
    assert torch.allclose(moved["thesis"], 100 * moved["cai"], rtol=1e-4)


def test_feature_size_comes_from_the_method_or_the_option() -> None:
    loss = L.CenterLoss(options("center"), info())
    with pytest.raises(UsageError, match="set loss.feature_dim"):
        loss.own_slots()
    loss.set_feature_dim(5)
    slot = loss.own_slots()[L.CENTER_SLOT]
    assert loss.centers.shape == (3, 5) and not slot.clip
    assert slot.optimizer.param_groups[0]["params"] == [loss.centers] and slot.optimizer.defaults["lr"] == 0.5
    fixed = L.CenterLoss(options("center", feature_dim=4), info())
    with pytest.raises(UsageError, match="have 6 dimensions"):
        fixed.set_feature_dim(6)
    with pytest.raises(UsageError, match="lambda_center must be > 0"):
        L.IslandLoss(options("island", lambda_center=0.0), info())


def test_losses_are_selectable_with_their_options_and_choices() -> None:
    reg = registry()
    tree = method_tree({"loss": {"name": "ce"}}, {"model": {}})
    config = build_config(tree, {}, assignments=[("loss.name", "island"), ("loss.form", "thesis")], losses=reg.losses)
    assert config["loss"] == {"name": "island", **L_OPTIONS_ISLAND, "form": "thesis"}
    with pytest.raises(UsageError, match="choose one of: cai, thesis"):
        build_config(tree, {}, assignments=[("loss.name", "island"), ("loss.form", "both")], losses=reg.losses)

