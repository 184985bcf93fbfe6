"""The ``rgbd-fusion`` method: two CNN streams, cross-modality spatial attention, a token encoder and an
MLP head, trained with a registered loss (island by default). See the package docstring for the choices."""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from ferbench.classifier import ClassifierMethod
from ferbench.errors import FerbenchError
from ferbench.method import DataInfo
from ferbench.optim import param_groups
from ferbench_plugins.common.backbones import create_backbone

from . import STREAMS
from .fusion import CrossModalityFusion, MLPHead, TokenEncoder


class Stream(nn.Module):
    """A timm CNN cut after ``blocks[feature_block]`` (EfficientNet-B2: blocks[6], 352 x 9 x 9 at 260 px).

    Keeps timm's module names (``conv_stem``, ``bn1``, ``blocks``), so its weights load by name; the
    unused head (``conv_head``, ``bn2``, classifier) is dropped after loading. One-channel inputs (depth)
    are stacked to three channels, as the thesis does for the pretrained stem.
    """

    def __init__(self, arch: str, feature_block: int, weights: Any = None, adapter: str = "timm",
                 timm_kwargs: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        net = create_backbone(arch, 0, weights=weights, adapter=adapter, **(timm_kwargs or {}))
        if not all(hasattr(net, name) for name in ("conv_stem", "bn1", "blocks")):
            raise FerbenchError(f"model.arch={arch!r} is not a timm EfficientNet-style CNN (conv_stem, bn1, "
                                "blocks); use e.g. efficientnet_b2 or test_efficientnet")
        if not -len(net.blocks) <= feature_block < len(net.blocks):
            raise FerbenchError(f"model.feature_block={feature_block} is out of range: {arch} has blocks "
                                f"0..{len(net.blocks) - 1}")
        self.conv_stem, self.bn1 = net.conv_stem, net.bn1
        self.blocks = net.blocks[:feature_block % len(net.blocks) + 1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return self.blocks(self.bn1(self.conv_stem(x)))

    @torch.no_grad()
    def output_shape(self, image_size: int) -> tuple[int, int, int]:
        """``(C, H, W)`` of the features of one ``image_size`` image (measured in eval mode)."""
        was_training = self.training
        self.eval()
        shape = self(torch.zeros(1, 3, image_size, image_size)).shape[1:]
        self.train(was_training)
        return tuple(shape)


class RGBDFusion(ClassifierMethod):
    """Two-stream RGB-D classifier of the thesis (seed 004 §3.3), selectable loss (``loss.name``)."""

    def __init__(self, config: dict[str, Any], info: DataInfo) -> None:
        super().__init__(config, info)
        cfg = config["model"]
        self.modalities = STREAMS[cfg["modalities"]]
        self.streams = nn.ModuleDict({
            name: Stream(cfg["arch"], cfg["feature_block"],
                         info.weights.get(f"model.{name}_weights"), cfg["weights_adapter"],
                         cfg["timm_kwargs"])
            for name in self.modalities})
        channels, height, width = next(iter(self.streams.values())).output_shape(info.image_size)
        self.fusion = CrossModalityFusion(channels, self.modalities, cfg["fusion"], cfg["attention_heads"])
        self.tokens = TokenEncoder(channels, height * width, cfg["embed_dim"], cfg["encoder_layers"],
                                   cfg["num_heads"], cfg["mlp_ratio"], cfg["dropout"], cfg["class_token"],
                                   cfg["pos_embed"])
        self.head = MLPHead(cfg["embed_dim"], cfg["head_hidden"], info.num_classes, cfg["dropout"])
        self.loss.set_feature_dim(cfg["head_hidden"])

    def stream_features(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each stream's feature map ``[B, C, H, W]``."""
        return {name: stream(inputs[name]) for name, stream in self.streams.items()}

    def features(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The MLP's hidden embedding (the features centre and island losses pull to the class centres)."""
        return self.head.embed(self.tokens(self.fusion(self.stream_features(inputs))))

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def optimizer_groups(self, exclude: set[int]) -> list[dict[str, Any]]:
        """The backbones at ``optim.backbone_lr`` and the fusion network at ``optim.lr`` (both peaks of the
        one-cycle schedule, both down to ``optim.min_lr``), in one optimizer (``optim.name``, AdamW in the
        presets)."""
        cfg = self.config["optim"]
        backbone = {id(p) for p in self.streams.parameters()}
        return (param_groups(self, cfg["weight_decay"], exclude=exclude | backbone)
                + param_groups(self.streams, cfg["weight_decay"], lr_scale=cfg["backbone_lr"] / cfg["lr"],
                               exclude=exclude))
