"""The ViT classifier behind ``vit-baseline``."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ferbench.method import Batch, DataInfo, Method, OptimizerSlot, StepContext
from ferbench.optim import optimizer_slot
from ferbench_plugins.common.backbones import create_vit


class ViTClassifier(Method):
    """timm ViT, linear head, cross-entropy (optionally label-smoothed)."""

    def __init__(self, config: dict[str, Any], info: DataInfo) -> None:
        super().__init__(config, info)
        self.backbone = create_vit(config["model"], info.image_size, info.num_classes)

    def configure_optimizers(self) -> dict[str, OptimizerSlot]:
        return {"model": optimizer_slot(self.backbone, self.config["optim"], self.info.steps_per_epoch,
                                        self.info.epochs)}

    def predict(self, batch: Batch) -> torch.Tensor:
        return self.backbone(batch.rgb)

    def training_step(self, batch: Batch, ctx: StepContext) -> dict[str, torch.Tensor]:
        with ctx.autocast():
            logits = self.predict(batch)
            loss = nn.functional.cross_entropy(logits, batch.labels,
                                               label_smoothing=self.config["loss"]["label_smoothing"])
        ctx.optimize(loss)
        return {"loss": loss.detach()}
