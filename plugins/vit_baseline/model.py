"""The ViT classifier behind ``vit-baseline``."""
from __future__ import annotations

from typing import Any, Mapping

import torch

from ferbench.classifier import ClassifierMethod
from ferbench.errors import UsageError
from ferbench.method import DataInfo
from ferbench_plugins.common.backbones import create_vit
from ferbench_plugins.common.pretrained import configured_weights, load_into


class ViTClassifier(ClassifierMethod):
    """timm ViT and its linear head, trained with the configured loss (``loss.name``; cross-entropy by
    default, on the dataset's target distributions when ``loss.soft_targets`` and the dataset has them).
    Starts from ``model.weights`` (through ``model.weights_adapter``) when it names weights."""

    def __init__(self, config: dict[str, Any], info: DataInfo) -> None:
        super().__init__(config, info)
        self.backbone = create_vit(config["model"], info.image_size, info.num_classes)
        self._load_weights(config["model"])

    def _load_weights(self, model: Mapping[str, Any]) -> None:
        if not model["weights"]:
            if model["weights_adapter"] != "timm":
                raise UsageError(f"model.weights_adapter is {model['weights_adapter']!r} but model.weights is empty: "
                                 "name the weights, e.g. --set model.weights=run:<id> of a `ferbench pretrain "
                                 "--method mae` run")
            return
        if model["pretrained"]:
            raise UsageError("model.pretrained and model.weights both give initial weights: set "
                             "model.pretrained=false to start from model.weights")
        load_into(self.backbone, configured_weights(self.info, "model.weights", model["weights"]),
                  model["weights_adapter"])

    def features(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.backbone.forward_head(self.backbone.forward_features(inputs["rgb"]), pre_logits=True)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        return self.backbone.head(features)
