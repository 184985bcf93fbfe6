"""Focal, centre and island losses (seed 004 §2.2; Lin et al. 2017, Wen et al. 2016, Cai et al. 2018).

``focal``: L = -(1/N) sum_i a_i (1 - p_i)^gamma log p_i, p_i the probability of the true class,
a_i = ``alpha``, times the class weight w_y = N / (K n_y) of the training part when ``class_weights`` (the
thesis's eq. 2.22 writes a per-class alpha_j; its code uses alpha 1, gamma 2).

``center``: L = CE + lambda_center L_C with L_C = 1/2 (1/B) sum_i ||x_i - c_{y_i}||^2. The batch sum of
eq. 2.15 is divided by the number of rows B (as Wen et al.'s own layer does), so lambda_center does not
depend on the batch size; the thesis's code divides by B without the 1/2 (= twice lambda_center). CE is the
core ``ce`` loss, class-weighted when ``class_weights`` (the thesis's weighted CE, eq. 2.12).

``island``: L_I = sum_j sum_{k != j} (cos(c_j, c_k) + 1) over the K class centres, and
  ``form: cai`` (default): L = CE + lambda_center (L_C + lambda_island L_I), Cai et al.'s IL-CNN objective,
  also what the thesis's code computes;
  ``form: thesis``: L = CE + lambda_center L_C + lambda_island L_I, eq. 2.19 as printed: with the same
  lambdas its island term weighs 100 times more (10 against CE's 1; L_I reaches 2K(K-1) = 84 for 7 classes).
  ``cai`` is the default because the values the thesis states (lambda 1e-2 and 10, §3.4) are Cai et al.'s,
  who define them for the nested form, and the thesis's own implementation nests them.

Features x are the method's embedding (``LossInput.features``) of every view. The centres are a [K, D]
parameter initialised N(0, 1) as in the thesis's code (zero centres, as in Wen et al., leave the island
cosines undefined) and trained by their own optimizer slot ``centers``: SGD, lr ``center_lr``, no momentum,
no gradient clipping (the engine unscales their gradients under mixed precision before the step).

``center_update`` says what that SGD steps on:
  ``rule`` (default): the update of eqs. 2.16-2.17 and 2.21, c_j <- c_j - alpha dc_j with
  dc_j = sum_{i: y_i = j} (c_j - x_i) / (1 + n_j) + r dL_I/dc_j / (1 + K), alpha = ``center_lr`` (0.5,
  §3.4), independent of lambda_center; r = w_I / w_C, the form's weights of L_I and L_C (cai:
  lambda_island, thesis: lambda_island / lambda_center), so the form decides how hard the island term
  pushes the centres apart. The network is trained on the loss with the centres held fixed.
  ``gradient``: the centres step on the gradient of the total loss, so each step carries the form's
  weights and the 1/B of L_C (the thesis's code; with lambda_center 1e-2 centres move about
  lambda_center * n_j / B as far per step as the rule moves them).
Under gradient accumulation ``rule`` normalises each micro-batch by its own counts n_j.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ferbench.errors import FerbenchError, UsageError
from ferbench.losses import CrossEntropy, Loss, LossInput, class_weights
from ferbench.method import DataInfo, OptimizerSlot

#: Optimizer slot of the class centres.
CENTER_SLOT = "centers"


def _cross_entropy(weighted: bool, info: DataInfo) -> CrossEntropy:
    """The core ``ce`` loss, plain or class-weighted."""
    return CrossEntropy({"label_smoothing": 0.0, "soft_targets": False, "class_weights": weighted}, info)


class FocalLoss(Loss):
    """Focal loss, see the module docstring."""

    def __init__(self, options: Mapping[str, Any], info: DataInfo) -> None:
        super().__init__()
        self.alpha, self.gamma = float(options["alpha"]), float(options["gamma"])
        self.register_buffer("weight", class_weights(info) if options["class_weights"] else None, persistent=False)

    def forward(self, inp: LossInput) -> dict[str, torch.Tensor]:
        logits, target = inp.logits.float(), inp.repeat(inp.labels)
        weighted_nll = F.cross_entropy(logits, target, weight=self.weight, reduction="none")
        p_true = logits.log_softmax(1).gather(1, target[:, None]).squeeze(1).exp()
        return {"loss": (self.alpha * (1 - p_true).pow(self.gamma) * weighted_nll).mean()}


def center_term(features: torch.Tensor, centers: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """L_C = 1/2 mean_i ||x_i - c_{y_i}||^2."""
    return 0.5 * (features - centers[labels]).pow(2).sum(1).mean()


def island_term(centers: torch.Tensor) -> torch.Tensor:
    """L_I = sum over ordered pairs j != k of (cos(c_j, c_k) + 1)."""
    unit = F.normalize(centers, dim=1)
    cosine = unit @ unit.T
    off_diagonal = ~torch.eye(len(centers), dtype=torch.bool, device=centers.device)
    return (cosine[off_diagonal] + 1).sum()


def rule_objective(features: torch.Tensor, centers: torch.Tensor, labels: torch.Tensor,
                   island_ratio: float) -> torch.Tensor:
    """A function of the centres whose gradient is the update dc of eqs. 2.17/2.21 (module docstring)."""
    counts = torch.bincount(labels, minlength=len(centers)).to(features.dtype)
    pulled = 0.5 * (features - centers[labels]).pow(2).sum(1) / (1 + counts[labels])
    objective = pulled.sum()
    if island_ratio:
        objective = objective + island_ratio * island_term(centers) / (1 + len(centers))
    return objective


class CenterLoss(Loss):
    """Class-weighted CE + centre loss with learned class centres, see the module docstring."""

    name = "center"

    def __init__(self, options: Mapping[str, Any], info: DataInfo) -> None:
        super().__init__()
        self.ce = _cross_entropy(bool(options["class_weights"]), info)
        self.num_classes = info.num_classes
        self.lambda_center = float(options["lambda_center"])
        self.center_lr = float(options["center_lr"])
        self.update = str(options["center_update"])
        if self.lambda_center <= 0:
            raise UsageError(f"loss.lambda_center must be > 0 for loss {self.name} (got {self.lambda_center}); "
                             "use loss.name=ce for cross-entropy alone")
        self.register_parameter("centers", None)
        if options["feature_dim"]:
            self.set_feature_dim(int(options["feature_dim"]))

    def term_weights(self) -> tuple[float, float]:
        """Weights (w_C, w_I) of the centre and island terms in the total loss."""
        return self.lambda_center, 0.0

    def set_feature_dim(self, dim: int) -> None:
        """Create the ``[K, dim]`` centres (the global torch RNG draws them; the engine seeds it per fold)."""
        if self.centers is not None:
            if self.centers.shape[1] != dim:
                raise UsageError(f"loss.feature_dim is {self.centers.shape[1]} but the method's features have "
                                 f"{dim} dimensions; set loss.feature_dim=0 (taken from the method) or {dim}")
            return
        self.centers = nn.Parameter(torch.randn(self.num_classes, dim))

    def _centers(self) -> nn.Parameter:
        if self.centers is None:
            raise UsageError(f"loss {self.name} needs the size of the method's features and this method does not "
                             "give it: set loss.feature_dim to its embedding size")
        return self.centers

    def own_slots(self) -> dict[str, OptimizerSlot]:
        return {CENTER_SLOT: OptimizerSlot(torch.optim.SGD([self._centers()], lr=self.center_lr), clip=False)}

    def forward(self, inp: LossInput) -> dict[str, torch.Tensor]:
        if inp.features is None:
            raise FerbenchError(f"loss {self.name} needs the method's features (LossInput.features)")
        centers, labels = self._centers(), inp.repeat(inp.labels)
        terms = {"ce": self.ce(inp)["loss"]}
        weight_c, weight_i = self.term_weights()
        with torch.autocast(inp.features.device.type, enabled=False):
            features = inp.features.float()
            seen = centers.detach() if self.update == "rule" else centers
            terms["center"] = center_term(features, seen, labels)
            total = terms["ce"] + weight_c * terms["center"]
            if weight_i:
                terms["island"] = island_term(seen)
                total = total + weight_i * terms["island"]
            if self.update == "rule":
                objective = rule_objective(features.detach(), centers, labels, weight_i / weight_c)
                total = total + (objective - objective.detach())  # adds the rule's gradient, not its value
        return {"loss": total, **{name: value.detach() for name, value in terms.items()}}


class IslandLoss(CenterLoss):
    """Class-weighted CE + centre + island loss, in Cai et al.'s or the thesis's form (module docstring)."""

    name = "island"

    def __init__(self, options: Mapping[str, Any], info: DataInfo) -> None:
        super().__init__(options, info)
        self.lambda_island = float(options["lambda_island"])
        self.form = str(options["form"])

    def term_weights(self) -> tuple[float, float]:
        if self.form == "cai":
            return self.lambda_center, self.lambda_center * self.lambda_island
        return self.lambda_center, self.lambda_island
