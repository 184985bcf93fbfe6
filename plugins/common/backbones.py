"""Backbone construction shared by the built-in methods."""
from __future__ import annotations

from typing import Any, Mapping

from torch import nn

from ferbench.errors import FerbenchError


def create_vit(cfg: Mapping[str, Any], image_size: int, num_classes: int) -> nn.Module:
    """A timm ViT sized by the ``model`` config section, at ``image_size``, with ``num_classes`` outputs.

    With ``pretrained: true`` the architecture must keep timm's sizes for ``arch`` (the weights come
    from the Hugging Face Hub through timm, or from its local cache when offline).
    """
    import timm

    kwargs = dict(img_size=image_size, num_classes=num_classes, patch_size=cfg["patch_size"],
                  embed_dim=cfg["embed_dim"], depth=cfg["depth"], num_heads=cfg["num_heads"],
                  mlp_ratio=cfg["mlp_ratio"], drop_path_rate=cfg["drop_path_rate"], global_pool=cfg["global_pool"])
    try:
        return timm.create_model(cfg["arch"], pretrained=cfg["pretrained"], **kwargs)
    except RuntimeError as exc:
        raise FerbenchError(f"cannot build {cfg['arch']}: {exc}".splitlines()[0]) from None
    except OSError as exc:
        raise FerbenchError(f"cannot fetch pretrained weights for {cfg['arch']} ({exc.__class__.__name__}); "
                            "pre-fill the Hugging Face cache or set model.pretrained=false") from None


def create_backbone(arch: str, num_classes: int, *, weights: Any = None, in_chans: int = 3,
                    **timm_kwargs: Any) -> nn.Module:
    """Any timm architecture with ``num_classes`` outputs (0: none), from random weights or from ``weights``
    (a resolved weights reference, see ``ferbench.weights``) loaded through the ``timm`` adapter."""
    import timm

    try:
        model = timm.create_model(arch, pretrained=False, num_classes=num_classes, in_chans=in_chans, **timm_kwargs)
    except (RuntimeError, TypeError) as exc:
        raise FerbenchError(f"cannot build timm model {arch!r}: {exc}".splitlines()[0]) from None
    if weights is not None:
        from ferbench.weights import load_weights

        load_weights(model, weights, "timm")
    return model
