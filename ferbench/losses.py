"""Training losses as named building blocks that any method can select through ``loss.name``.

A loss plugin registers a :class:`~ferbench.specs.LossSpec`; a method builds the configured loss with
:func:`build_loss` and calls it on a :class:`LossInput` (logits of every view, labels, optional features
and soft labels). A loss may prepare the batch before the forward pass (e.g. mix images for a
mix-supervised contrastive loss), hold parameters trained with the model (a projection head), and
declare parameters that need an optimizer of their own (class centres), see :meth:`Loss.own_slots`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import nn

from .method import Batch, DataInfo, OptimizerSlot
from .specs import load_object


@dataclass
class MixInfo:
    """How :meth:`Loss.prepare` mixed a batch: row ``i`` holds ``lam[i]`` of its own image and
    ``1 - lam[i]`` of row ``partner[i]``'s (for CutMix, ``lam`` is the kept area)."""

    partner: torch.Tensor  # [B] int64
    lam: torch.Tensor  # [B] float


@dataclass
class LossInput:
    """What a loss sees of one training batch. Views are stacked view-major: rows ``v*B:(v+1)*B`` of
    ``logits`` and ``features`` belong to view ``v``."""

    logits: torch.Tensor  # [V*B, K]
    labels: torch.Tensor  # [B]
    features: torch.Tensor | None = None  # [V*B, D] pre-logit embeddings
    soft_labels: torch.Tensor | None = None  # [B, K]
    views: int = 1
    mix: MixInfo | None = None

    def repeat(self, per_sample: torch.Tensor) -> torch.Tensor:
        """A per-sample tensor ``[B, ...]`` repeated for every view ``[V*B, ...]``."""
        return per_sample.repeat(self.views, *([1] * (per_sample.dim() - 1)))


class Loss(nn.Module):
    """Base class of registered losses. ``forward`` returns ``{"loss": total, ...named terms to log}``."""

    def prepare(self, batch: Batch) -> tuple[Batch, MixInfo | None]:
        """Change the batch before the forward pass (default: unchanged). Uses the global torch RNG,
        which the engine seeds per epoch, so a resumed epoch replays the same draws."""
        return batch, None

    def own_slots(self) -> dict[str, OptimizerSlot]:
        """Parameters that need an optimizer of their own, by slot name (default: none)."""
        return {}

    def set_feature_dim(self, dim: int) -> None:
        """Told by the method, while it is built, how wide its features are (a loss holding per-class
        centres or a projection head sizes its parameters here). Default: nothing to size."""

    def forward(self, inp: LossInput) -> dict[str, torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError


class CrossEntropy(Loss):
    """Cross-entropy: plain, label-smoothed, on the dataset's target distributions
    (``soft_targets``, e.g. FERPlus votes, when the dataset has them) and/or class-weighted
    (``class_weights``: w_c = N / (K n_c) from the training part, as in the RGB-D thesis code)."""

    def __init__(self, options: Mapping[str, Any], info: DataInfo) -> None:
        super().__init__()
        self.label_smoothing = float(options["label_smoothing"])
        self.soft_targets = bool(options["soft_targets"])
        self.register_buffer("weight", class_weights(info) if options["class_weights"] else None, persistent=False)

    def forward(self, inp: LossInput) -> dict[str, torch.Tensor]:
        use_soft = self.soft_targets and inp.soft_labels is not None
        target = inp.repeat(inp.soft_labels if use_soft else inp.labels)
        loss = nn.functional.cross_entropy(inp.logits.float(), target, weight=self.weight,
                                           label_smoothing=self.label_smoothing)
        return {"loss": loss}


def class_weights(info: DataInfo) -> torch.Tensor:
    """w_c = N / (K n_c) from the fold's training counts (a class without samples counts as one)."""
    counts = torch.as_tensor(info.class_counts, dtype=torch.float32).clamp(min=1)
    return counts.sum() / (len(counts) * counts)


def build_loss(loss_config: Mapping[str, Any], info: DataInfo) -> Loss:
    """The loss named by ``loss_config["name"]``, built from the rest of the section."""
    from .plugins import registry

    spec = registry().loss(loss_config["name"])
    options = {key: value for key, value in loss_config.items() if key != "name"}
    return load_object(spec.factory)(options, info)
