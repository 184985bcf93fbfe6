"""Prior distribution label smoothing (PDLS) and its focal form (F-PDLS, Hwang et al., ICASSP 2022).

For a sample of class ``y`` the target is ``q = alpha * onehot(y) + (1 - alpha) * P[y]``, where row ``y`` of
the prior matrix ``P`` is how samples of class ``y`` spread over the classes. The loss is
``-sum_c (1 - p_c)^gamma * q_c * log p_c`` with ``p = softmax(logits)``, averaged over samples and views: the
focal factor weighs every class term (as in the public code), and ``gamma = 0`` gives PDLS. Defaults from the
public code's config: ``alpha`` 0.8, ``gamma`` 2. Its plain PDLS class defaults to alpha 0.5; ferbench keeps
0.8 for ``pdls`` so that the poster's loss ablation changes only the focal factor (``--set loss.alpha=0.5``
gives the public default).

The prior comes from the fold's training part, never from another dataset (the public code reuses FER+'s
matrix for RAF-DB and AffectNet, a bug). ``prior``:

- ``votes``: :attr:`DataInfo.prior`, the mean vote distribution per true class, for datasets with soft labels
  (FERPlus crowd votes); an error for a dataset without them.
- ``uniform``: the smoothing mass spread evenly over the other classes (``P[y, c] = 1/(K-1)``, ``c != y``),
  i.e. label smoothing that never smooths onto the true class.
- ``auto`` (default): ``votes`` when the dataset has them, ``uniform`` otherwise.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from ferbench.errors import UsageError
from ferbench.losses import Loss, LossInput
from ferbench.method import DataInfo


def uniform_prior(num_classes: int) -> np.ndarray:
    """``[K, K]``: zero on the diagonal, ``1/(K-1)`` elsewhere."""
    if num_classes < 2:
        raise UsageError("prior label smoothing needs at least two classes")
    return (1.0 - np.eye(num_classes)) / (num_classes - 1)


def prior_matrix(choice: str, info: DataInfo) -> np.ndarray:
    """The ``[K, K]`` prior selected by ``loss.prior`` (``auto``, ``votes`` or ``uniform``), rows summing to 1."""
    if choice == "uniform" or (choice == "auto" and info.prior is None):
        return uniform_prior(info.num_classes)
    if info.prior is None:
        raise UsageError("loss.prior=votes needs a dataset with vote distributions (e.g. ferplus); this one has none: "
                         "use loss.prior=uniform or auto")
    prior = np.asarray(info.prior, dtype=np.float64)
    if prior.shape != (info.num_classes, info.num_classes) or (prior < 0).any() or (prior.sum(1) <= 0).any():
        raise UsageError(f"the dataset's prior matrix has shape {prior.shape} or empty/negative rows; expected "
                         f"non-negative rows of shape ({info.num_classes}, {info.num_classes})")
    return prior / prior.sum(axis=1, keepdims=True)


class PriorLabelSmoothing(Loss):
    """``-sum_c (1 - p_c)^gamma * q_c * log p_c`` with ``q = alpha * onehot + (1 - alpha) * P[y]``."""

    def __init__(self, alpha: float, gamma: float, prior: np.ndarray) -> None:
        super().__init__()
        if not 0.0 <= alpha <= 1.0 or gamma < 0:
            raise UsageError(f"loss.alpha must be within [0, 1] and loss.gamma >= 0 (got {alpha}, {gamma})")
        self.alpha, self.gamma = alpha, gamma
        self.register_buffer("prior", torch.as_tensor(prior, dtype=torch.float32))

    def targets(self, labels: torch.Tensor) -> torch.Tensor:
        """Smoothed targets ``[N, K]`` of integer labels."""
        one_hot = F.one_hot(labels, self.prior.shape[0]).float()
        return self.alpha * one_hot + (1 - self.alpha) * self.prior[labels]

    def forward(self, inp: LossInput) -> dict[str, torch.Tensor]:
        log_p = F.log_softmax(inp.logits.float(), dim=1)
        weight = (1 - log_p.exp()).pow(self.gamma) if self.gamma else 1.0
        loss = -(weight * self.targets(inp.repeat(inp.labels)) * log_p).sum(dim=1).mean()
        return {"loss": loss}


def pdls(options: Mapping[str, Any], info: DataInfo) -> PriorLabelSmoothing:
    """PDLS: no focal factor."""
    return PriorLabelSmoothing(float(options["alpha"]), 0.0, prior_matrix(options["prior"], info))


def focal_pdls(options: Mapping[str, Any], info: DataInfo) -> PriorLabelSmoothing:
    """F-PDLS: focal factor ``(1 - p_c)^gamma``."""
    return PriorLabelSmoothing(float(options["alpha"]), float(options["gamma"]), prior_matrix(options["prior"], info))
