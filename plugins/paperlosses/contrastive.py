"""Supervised (SCL) and mix-supervised (MSCL) contrastive losses, each added to cross-entropy.

``scl`` (Khosla et al. 2020): every view of every image is an anchor; its positives are the other samples
of the multi-view batch with its label, its contrast set every other sample. The per-anchor term is
``-1/|P(a)| sum_{p in P(a)} log(exp(z_a.z_p/t) / sum_{k != a} exp(z_a.z_k/t))`` on L2-normalised projections
``z`` (temperature ``t`` 0.07); the loss is the mean over anchors that have at least one positive (an anchor
without positives contributes nothing, never a NaN). Total: ``CE + weight * SCL``.

``mscl`` (MIMIC, Zhang et al. 2024, §III-B, Eqs. 9-14): :meth:`MixSupervisedContrastive.prepare` mixes the
views with Mixup or CutMix (coefficient ``lam ~ Beta(mix_alpha, mix_alpha)``), so each sample carries a
label distribution (one-hot for a clean view, ``lam * y_i + (1 - lam) * y_j`` for a mixed one). A candidate is
a positive of an anchor when the distance between their label distributions is under ``threshold`` (0.5):
the paper's case 1 (both mixed images have the anchor's label: distance 0) and case 2 (labels differ but the
mixed label is close); otherwise (case 3) it is a negative. The paper's equations were lost and it leaves
these choices open; each is an option (defaults defended here):

- ``distance: tv`` (half the L1 distance, the total variation between label distributions; ``l1``, ``l2``).
  With threshold 0.5, a clean anchor of class a takes a mix of a and b as positive exactly when class a holds
  more than half of the mix, a majority rule; two clean samples are positives iff they share their label, so
  without mixing MSCL is SCL.
- ``visual_similarity: none``: the paper's cases pair "same/close label" with "visually similar" but give no
  measure; its case 1 states the similarity as a consequence of the shared label. ``none`` lets the label rule
  decide. ``cosine`` also requires the detached cosine similarity of the two projections to exceed
  ``similarity_threshold`` for a positive; label-close but dissimilar pairs are then left out of the anchor's
  contrast set (neither positive nor negative, as the paper names no case for them).
- ``mix_alpha: 1.0`` (Beta(1, 1): lam uniform; the paper's value was lost, 1.0 is timm's Mixup and the MAE
  recipe's CutMix alpha) and ``cutmix_prob: 0.5`` (CutMix or Mixup with equal probability per batch, timm's
  ``switch_prob``; the paper says only "a combination of Mixup and CutMix").
- ``contrast_set: clean+mixed``: the multi-view batch holds the clean views and their mixes (the paper states
  the cases for an anchor with a plain label ``y_a`` and says the mixed pairs add positives to the
  supervised batch); costs a second forward pass. ``mixed``: the mixed views only (one forward pass).
- ``ce_on: clean``: cross-entropy on the clean views with their hard labels (the paper's Eq. 3 fine-tuning
  loss); ``mixed``: on the mixed views with their mixed labels (the MAE fine-tuning recipe); ``all``: both.

Both losses hold their projection head (``projection: none | linear | dense``, ``projection_dim`` 128) as
loss parameters, trained with the model: the method sizes it with :func:`~ferbench_plugins.common.heads.bind_loss`.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ferbench.errors import FerbenchError, UsageError
from ferbench.losses import Loss, LossInput, MixInfo
from ferbench.method import Batch, DataInfo
from ferbench_plugins.common.heads import projection_head

from .mixing import mix_views

#: Logit given to pairs outside an anchor's contrast set: finite, so an anchor without any stays NaN-free.
_EXCLUDED = -1e9


def supervised_contrastive(z: torch.Tensor, positive: torch.Tensor, valid: torch.Tensor,
                           temperature: float) -> torch.Tensor:
    """Mean over anchors with positives of ``-mean_{p in P(a)} log softmax_{k in A(a)}(z_a.z_k / t)[p]``.

    ``z`` ``[N, D]`` are L2-normalised embeddings; ``positive`` and ``valid`` ``[N, N]`` are boolean masks:
    ``P(a)`` = positive row ``a``, ``A(a)`` = valid row ``a`` (both without ``a`` itself; positives outside
    ``A(a)`` are ignored). Returns 0 (still attached to ``z``) when no anchor has a positive.
    """
    eye = torch.eye(len(z), dtype=torch.bool, device=z.device)
    valid = valid & ~eye
    positive = positive & valid
    logits = (z @ z.T / temperature).masked_fill(~valid, _EXCLUDED)
    log_prob = logits - logits.logsumexp(dim=1, keepdim=True)
    counts = positive.sum(dim=1)
    anchors = counts > 0
    if not bool(anchors.any()):
        return z.sum() * 0.0
    per_anchor = log_prob.masked_fill(~positive, 0.0).sum(dim=1)[anchors] / counts[anchors]
    return -per_anchor.mean()


def label_distance(targets: torch.Tensor, kind: str) -> torch.Tensor:
    """Pairwise distances ``[N, N]`` between label distributions ``[N, K]``: ``tv``, ``l1`` or ``l2``."""
    if kind == "l2":
        return torch.cdist(targets, targets, p=2.0)
    l1 = torch.cdist(targets, targets, p=1.0)
    return l1 / 2 if kind == "tv" else l1


class SupervisedContrastive(Loss):
    """``CE + weight * SCL`` over every view of the batch (see the module docstring)."""

    term = "scl"

    def __init__(self, options: Mapping[str, Any], info: DataInfo) -> None:
        super().__init__()
        self.weight = float(options["weight"])
        self.temperature = float(options["temperature"])
        self.label_smoothing = float(options["label_smoothing"])
        self.projection_kind = str(options["projection"])
        self.projection_dim = int(options["projection_dim"])
        if self.temperature <= 0:
            raise UsageError(f"loss.temperature must be positive (got {self.temperature})")
        self.projection: nn.Module | None = nn.Identity() if self.projection_kind == "none" else None
        self._bound_dim: int | None = None

    def set_feature_dim(self, features_dim: int) -> None:
        """Build the projection head for embeddings of width ``features_dim`` (once; again if it changes)."""
        if self.projection_kind != "none" and features_dim != self._bound_dim:
            self.projection = projection_head(self.projection_kind, features_dim, self.projection_dim)
            self._bound_dim = features_dim

    def embed(self, features: torch.Tensor | None) -> torch.Tensor:
        """L2-normalised projections ``[N, projection_dim]`` of the embeddings."""
        if features is None:
            raise FerbenchError(f"loss {self.term} needs the method's embeddings (LossInput.features)")
        if self.projection is None:
            raise FerbenchError(f"loss {self.term}: its {self.projection_kind} projection head was never sized; the "
                                "method must call loss.set_feature_dim(features_dim) while it is built")
        return F.normalize(self.projection(features).float(), dim=1)

    def forward(self, inp: LossInput) -> dict[str, torch.Tensor]:
        labels = inp.repeat(inp.labels)
        same = labels[:, None] == labels[None, :]
        contrastive = supervised_contrastive(self.embed(inp.features), same, torch.ones_like(same), self.temperature)
        ce = F.cross_entropy(inp.logits.float(), labels, label_smoothing=self.label_smoothing)
        return {"loss": ce + self.weight * contrastive, "ce": ce, self.term: contrastive}


class MixSupervisedContrastive(SupervisedContrastive):
    """``CE + weight * MSCL``: SCL whose multi-view batch also holds mixed images (see the module docstring)."""

    term = "mscl"

    def __init__(self, options: Mapping[str, Any], info: DataInfo) -> None:
        super().__init__(options, info)
        self.mix_alpha = float(options["mix_alpha"])
        self.cutmix_prob = float(options["cutmix_prob"])
        self.distance = str(options["distance"])
        self.threshold = float(options["threshold"])
        self.visual_similarity = str(options["visual_similarity"])
        self.similarity_threshold = float(options["similarity_threshold"])
        self.keep_clean = options["contrast_set"] == "clean+mixed"
        self.ce_on = str(options["ce_on"])
        if not self.keep_clean and self.ce_on != "mixed":
            raise UsageError(f"loss.ce_on={self.ce_on} needs the clean views, but loss.contrast_set=mixed drops them; "
                             "set loss.ce_on=mixed or loss.contrast_set=clean+mixed")
        if self.mix_alpha < 0 or not 0.0 <= self.cutmix_prob <= 1.0:
            raise UsageError("loss.mix_alpha must be >= 0 and loss.cutmix_prob within [0, 1] "
                             f"(got {self.mix_alpha}, {self.cutmix_prob})")

    def prepare(self, batch: Batch) -> tuple[Batch, MixInfo | None]:
        mixed, mix = mix_views(batch.views, self.mix_alpha, self.cutmix_prob)
        views = batch.views + mixed if self.keep_clean else mixed
        return dataclasses.replace(batch, views=views), mix

    def targets(self, inp: LossInput) -> tuple[torch.Tensor, torch.Tensor]:
        """Label distribution of every row ``[V*B, K]`` and which rows are clean views ``[V*B]``."""
        one_hot = F.one_hot(inp.labels, inp.logits.shape[1]).float()
        if inp.mix is None:  # used without prepare: every view is clean
            return inp.repeat(one_hot), torch.ones(len(inp.logits), dtype=torch.bool, device=one_hot.device)
        lam = inp.mix.lam.float()[:, None]
        mixed = lam * one_hot + (1 - lam) * one_hot[inp.mix.partner]
        clean_views = inp.views // 2 if self.keep_clean else 0
        rows = [one_hot] * clean_views + [mixed] * (inp.views - clean_views)
        is_clean = torch.arange(inp.views, device=one_hot.device).repeat_interleave(len(one_hot)) < clean_views
        return torch.cat(rows), is_clean

    def pair_masks(self, targets: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(positive, valid)`` ``[N, N]``: label-close (and, with ``visual_similarity: cosine``, similar) pairs
        of distinct samples are positives; label-close but dissimilar pairs are left out of the contrast set."""
        near = label_distance(targets, self.distance) < self.threshold
        near &= ~torch.eye(len(near), dtype=torch.bool, device=near.device)
        if self.visual_similarity != "cosine":
            return near, torch.ones_like(near)
        similar = (z @ z.T).detach() > self.similarity_threshold
        return near & similar, ~near | similar

    def forward(self, inp: LossInput) -> dict[str, torch.Tensor]:
        targets, is_clean = self.targets(inp)
        z = self.embed(inp.features)
        contrastive = supervised_contrastive(z, *self.pair_masks(targets, z), self.temperature)
        rows = {"clean": is_clean, "mixed": ~is_clean}.get(self.ce_on, torch.ones_like(is_clean))
        if not bool(rows.any()):  # used without prepare and ce_on=mixed: no mixed rows, train on the clean ones
            rows = torch.ones_like(is_clean)
        ce = F.cross_entropy(inp.logits.float()[rows], targets[rows], label_smoothing=self.label_smoothing)
        return {"loss": ce + self.weight * contrastive, "ce": ce, self.term: contrastive}
