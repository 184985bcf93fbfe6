"""The MIMIC classifier: a timm ViT (MAE or supervised weights) with a class-token or GAP head."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ferbench.classifier import ClassifierMethod
from ferbench.method import DataInfo
from ferbench_plugins.common.backbones import create_backbone, pooled_features, size_overrides

#: Standard deviation of the classifier's initial weights in MAE fine-tuning.
HEAD_INIT_STD = 2e-5


class MIMIC(ClassifierMethod):
    """ViT encoder + ``fc_norm``/``head`` (GAP) or ``norm``/``head`` (class token), trained with ``loss.name``
    (CE + 0.1 MSCL by default; the loss holds its projection head)."""

    def __init__(self, config: dict[str, Any], info: DataInfo) -> None:
        super().__init__(config, info)
        cfg = config["model"]
        weights = info.weights.get("model.weights")
        self.backbone = create_backbone(cfg["arch"], info.num_classes, weights=weights, adapter=cfg["weights_adapter"],
                                        img_size=info.image_size, global_pool=cfg["global_pool"],
                                        drop_path_rate=cfg["drop_path_rate"], **size_overrides(cfg))
        if weights is not None:
            nn.init.trunc_normal_(self.backbone.head.weight, std=HEAD_INIT_STD)
            nn.init.zeros_(self.backbone.head.bias)
        self.loss.set_feature_dim(self.backbone.num_features)

    def features(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return pooled_features(self.backbone, inputs["rgb"])

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        return self.backbone.head(features)
