"""``ClassifierMethod``: the common shape of a classifier whose loss is a registered, selectable loss.

A subclass builds its network, tells the loss how wide its features are (``self.loss.set_feature_dim``,
for losses holding class centres or projection heads), and implements :meth:`ClassifierMethod.features`
(inputs -> embedding) and :meth:`ClassifierMethod.classify` (embedding -> logits). The base class builds ``loss.name`` with
:func:`ferbench.losses.build_loss`, runs every augmented view through the network in one forward pass,
hands logits and features to the loss, and optimizes the ``model`` slot plus the loss's own slots. So
any registered loss (cross-entropy, contrastive, prior label smoothing, centre losses) works with any
classifier built this way.
"""
from __future__ import annotations

from typing import Any

import torch

from .losses import LossInput, build_loss
from .method import Batch, DataInfo, Method, OptimizerSlot, StepContext
from .optim import optimizer_slot, param_groups

#: Name of the optimizer slot that trains the network (and the loss's parameters without a slot of their own).
MODEL_SLOT = "model"


class ClassifierMethod(Method):
    """Base class: ``features`` + ``classify`` + a registered loss + one ``model`` optimizer slot."""

    def __init__(self, config: dict[str, Any], info: DataInfo) -> None:
        super().__init__(config, info)
        self.loss = build_loss(config["loss"], info)
        self.loss_slots: tuple[str, ...] = ()

    def features(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The embedding ``[B, D]`` that :meth:`classify` maps to logits."""
        raise NotImplementedError

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """Class logits ``[B, K]`` from embeddings."""
        raise NotImplementedError

    def predict(self, batch: Batch) -> torch.Tensor:
        return self.classify(self.features(batch.inputs))

    def optimizer_groups(self, exclude: set[int]) -> list[dict[str, Any]]:
        """Parameter groups of the ``model`` slot (all parameters but ``exclude``, with the ``optim``
        section's weight decay and layer decay); override to give parts their own learning rate."""
        cfg = self.config["optim"]
        return param_groups(self, cfg["weight_decay"], cfg["layer_decay"], exclude=exclude)

    def extra_slots(self) -> dict[str, OptimizerSlot]:
        """Optimizers of parts trained apart from the network (e.g. an adversarial discriminator), by slot
        name; their parameters stay out of the ``model`` slot (default: none)."""
        return {}

    def configure_optimizers(self) -> dict[str, OptimizerSlot]:
        own = self.loss.own_slots()
        extra = self.extra_slots()
        excluded = {id(p) for slot in (*own.values(), *extra.values()) for p in slot.parameters()}
        model = optimizer_slot(self, self.config["optim"], self.info.steps_per_epoch, self.info.epochs,
                               groups=self.optimizer_groups(excluded))
        self.loss_slots = tuple(own)
        return {MODEL_SLOT: model, **own, **extra}

    def training_step(self, batch: Batch, ctx: StepContext) -> dict[str, torch.Tensor]:
        batch, mix = self.loss.prepare(batch)
        with ctx.autocast():
            stacked = {name: torch.cat([view[name] for view in batch.views]) for name in batch.inputs}
            features = self.features(stacked)
            terms = self.loss(LossInput(logits=self.classify(features), labels=batch.labels, features=features,
                                        soft_labels=batch.soft_labels, views=len(batch.views), mix=mix))
        ctx.optimize(terms["loss"], MODEL_SLOT, *self.loss_slots)
        return {name: value.detach() for name, value in terms.items()}
