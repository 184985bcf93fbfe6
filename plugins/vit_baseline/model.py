"""The ViT classifier behind ``vit-baseline``."""
from __future__ import annotations

from typing import Any

import torch

from ferbench.classifier import ClassifierMethod
from ferbench.errors import UsageError
from ferbench.method import DataInfo
from ferbench_plugins.common.backbones import create_backbone, pooled_features, vit_kwargs


class ViTClassifier(ClassifierMethod):
    """timm ViT and its linear head, trained with the configured loss (``loss.name``; cross-entropy by
    default, on the dataset's target distributions when ``loss.soft_targets`` and the dataset has them)."""

    def __init__(self, config: dict[str, Any], info: DataInfo) -> None:
        super().__init__(config, info)
        model = config["model"]
        if not model["weights"] and model["weights_adapter"] != "timm":
            raise UsageError(f"model.weights_adapter is {model['weights_adapter']!r} but model.weights is empty: name "
                             "the weights, e.g. --set model.weights=run:<id> of a `ferbench pretrain --method mae` run")
        self.backbone = create_backbone(model["arch"], info.num_classes, weights=info.weights.get("model.weights"),
                                        adapter=model["weights_adapter"], img_size=info.image_size, **vit_kwargs(model))
        self.loss.set_feature_dim(self.backbone.num_features)

    def features(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return pooled_features(self.backbone, inputs["rgb"])

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        return self.backbone.head(features)
