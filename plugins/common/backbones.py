"""Backbone construction shared by the built-in methods: any timm architecture, with weights by reference."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from torch import nn

from ferbench.errors import FerbenchError

if TYPE_CHECKING:
    from ferbench.weights import LoadReport, ResolvedWeights

#: Where a ferbench classifier keeps its timm network: a kept run's weights under this prefix load into a
#: new backbone (e.g. to start a fine-tune on another dataset from a finished run).
BACKBONE_PREFIX = "backbone."


def create_backbone(arch: str, num_classes: int, *, weights: ResolvedWeights | None = None, adapter: str = "timm",
                    in_chans: int = 3, min_fraction: float = 0.9, **timm_kwargs: Any) -> nn.Module:
    """A timm model ``arch`` (ViT, Swin, EfficientNet, ResNet, ...) with ``num_classes`` outputs (0: none),
    ``in_chans`` input channels, initialised from ``weights`` through ``adapter`` when given.

    timm never downloads here: weights are resolved (and recorded) by the runner before the run starts.
    """
    import timm

    try:
        model = timm.create_model(arch, pretrained=False, num_classes=num_classes, in_chans=in_chans, **timm_kwargs)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise FerbenchError(f"cannot build timm model {arch!r}: {str(exc).splitlines()[0]}") from None
    if weights is not None:
        load_backbone_weights(model, weights, adapter, min_fraction)
    return model


def load_backbone_weights(model: nn.Module, weights: ResolvedWeights, adapter: str, min_fraction: float) -> LoadReport:
    """Load ``weights`` into ``model``; a kept ferbench classifier's ``backbone.`` tensors are taken as the
    backbone's own."""
    from ferbench.weights import load_weights, read_state_dict

    state = read_state_dict(weights.path)
    prefix = BACKBONE_PREFIX if any(k.startswith(BACKBONE_PREFIX) for k in state) else ""
    if prefix:
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    return load_weights(model, state, adapter=adapter, min_fraction=min_fraction)


def vit_kwargs(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """timm VisionTransformer sizes from a ``model`` config section."""
    return dict(patch_size=cfg["patch_size"], embed_dim=cfg["embed_dim"], depth=cfg["depth"],
                num_heads=cfg["num_heads"], mlp_ratio=cfg["mlp_ratio"], drop_path_rate=cfg["drop_path_rate"],
                global_pool=cfg["global_pool"])
