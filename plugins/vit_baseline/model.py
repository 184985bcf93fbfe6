"""The ViT classifier behind ``vit-baseline``."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ferbench.method import Batch, DataInfo, Method, OptimizerSlot, StepContext
from ferbench.optim import optimizer_slot
from ferbench_plugins.common.backbones import create_vit


class ViTClassifier(Method):
    """timm ViT, linear head, cross-entropy (optionally label-smoothed; on the dataset's target
    distributions, e.g. FERPlus votes, when ``loss.soft_targets`` is true and the dataset has them)."""

    def __init__(self, config: dict[str, Any], info: DataInfo) -> None:
        super().__init__(config, info)
        self.backbone = create_vit(config["model"], info.image_size, info.num_classes)

    def configure_optimizers(self) -> dict[str, OptimizerSlot]:
        return {"model": optimizer_slot(self.backbone, self.config["optim"], self.info.steps_per_epoch,
                                        self.info.epochs)}

    def predict(self, batch: Batch) -> torch.Tensor:
        return self.backbone(batch.rgb)

    def training_step(self, batch: Batch, ctx: StepContext) -> dict[str, torch.Tensor]:
        use_soft = self.config["loss"]["soft_targets"] and batch.soft_labels is not None
        with ctx.autocast():
            logits = self.predict(batch)
            loss = nn.functional.cross_entropy(logits, batch.soft_labels if use_soft else batch.labels,
                                               label_smoothing=self.config["loss"]["label_smoothing"])
        ctx.optimize(loss)
        return {"loss": loss.detach()}
