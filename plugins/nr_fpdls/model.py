"""The neural-resizer classifier: up-scaling -> optional STN -> down-scaling -> timm backbone -> head."""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from ferbench.classifier import ClassifierMethod
from ferbench.errors import UsageError
from ferbench.method import DataInfo
from ferbench_plugins.common.backbones import create_backbone, pooled_features, size_overrides
from ferbench_plugins.common.heads import mlp_classifier

from .resizer import Interpolate, LearnedResizer
from .stn import SpatialTransformer
from .superres import SuperResolution


def build_upscaler(cfg: Mapping[str, Any], info: DataInfo) -> tuple[nn.Module, int]:
    """The up-scaling stage and its output size: ``image_size * sr_scale``, or the backbone's input size
    when nothing down-scales afterwards (``model.downscale=none``)."""
    size = cfg["input_size"] if cfg["downscale"] == "none" else info.image_size * cfg["sr_scale"]
    if cfg["upscale"] != "learned":
        return Interpolate(size, cfg["upscale"]), size
    if info.image_size * cfg["sr_scale"] != size:
        raise UsageError(f"model.upscale=learned makes {info.image_size * cfg['sr_scale']} px images, but "
                         f"model.downscale=none feeds them to a {size} px backbone: set model.downscale")
    mean, std = info.normalization.get("rgb", ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)))
    sr = SuperResolution(cfg["sr_scale"], cfg["sr_channels"], cfg["sr_blocks"], mean, std)
    weights = info.weights.get("model.sr_weights")
    if weights is not None:
        from ferbench.weights import load_weights

        load_weights(sr, weights, adapter="exact")
        sr.requires_grad_(cfg["sr_finetune"])
    return sr, size


def build_downscaler(cfg: Mapping[str, Any]) -> nn.Module:
    """The stage that brings up-scaled images to the backbone's input size."""
    if cfg["downscale"] == "learned":
        return LearnedResizer(cfg["input_size"], cfg["resizer_channels"], cfg["resizer_blocks"])
    if cfg["downscale"] == "bilinear":
        return Interpolate(cfg["input_size"], "bilinear")
    return nn.Identity()


class NeuralResizerClassifier(ClassifierMethod):
    """48 px faces -> up-scaler -> [STN] -> resizer -> timm backbone (pooled features) -> linear or MLP head."""

    def __init__(self, config: dict[str, Any], info: DataInfo) -> None:
        super().__init__(config, info)
        cfg = config["model"]
        self.upscale, upscaled = build_upscaler(cfg, info)
        self.stn = SpatialTransformer(upscaled) if cfg["stn"] else nn.Identity()
        self.downscale = build_downscaler(cfg)
        self.backbone = create_backbone(cfg["arch"], 0, weights=info.weights.get("model.weights"),
                                        adapter=cfg["weights_adapter"], img_size=cfg["input_size"],
                                        drop_path_rate=cfg["drop_path_rate"], **size_overrides(cfg))
        width = self.backbone.num_features
        self.head = (mlp_classifier(width, cfg["head_hidden"], info.num_classes, cfg["head_dropout"])
                     if cfg["head"] == "mlp" else nn.Linear(width, info.num_classes))
        self.loss.set_feature_dim(width)

    def resize(self, images: torch.Tensor) -> torch.Tensor:
        """Dataset images ``[B, 3, S, S]`` brought to the backbone's input ``[B, 3, input_size, input_size]``."""
        return self.downscale(self.stn(self.upscale(images)))

    def features(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return pooled_features(self.backbone, self.resize(inputs["rgb"]))

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)
