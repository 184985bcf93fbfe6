"""Backbone construction shared by the built-in methods."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

import torch
from torch import nn

from ferbench.errors import FerbenchError

if TYPE_CHECKING:
    from ferbench.method import DataInfo
    from ferbench.weights import ResolvedWeights

#: ``model`` keys that resize a timm ViT-like architecture; 0 keeps the size that ``arch`` names.
SIZE_KEYS = ("patch_size", "embed_dim", "depth", "num_heads")


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


def size_overrides(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The architecture sizes a ``model`` section changes (:data:`SIZE_KEYS` set to a non-zero value)."""
    return {key: cfg[key] for key in SIZE_KEYS if cfg.get(key)}


def create_backbone(arch: str, num_classes: int, *, weights: ResolvedWeights | None = None, in_chans: int = 3,
                    adapter: str = "timm", **timm_kwargs: Any) -> nn.Module:
    """Any timm architecture (``arch`` may carry a pretrained tag, e.g. ``vit_base_patch16_224.mae``) with
    ``num_classes`` outputs (0: no classifier, the model returns pooled features), random init, then
    ``weights`` loaded through the weights ``adapter`` (``timm``, ``mae-encoder``, ...), which reports
    missing and unexpected tensors by name and refuses weights that barely match."""
    import timm

    try:
        model = timm.create_model(arch, pretrained=False, num_classes=num_classes, in_chans=in_chans, **timm_kwargs)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise FerbenchError(f"cannot build timm model {arch!r}: {exc}".splitlines()[0]) from None
    if weights is not None:
        load_pretrained(model, weights, adapter)
    return model


def load_pretrained(module: nn.Module, weights: ResolvedWeights, adapter: str) -> None:
    """Load resolved ``weights`` into ``module`` through the weights ``adapter`` (see ``ferbench.weights``)."""
    from ferbench.weights import load_weights  # the weights seam, imported only when weights are given

    load_weights(module, weights, adapter=adapter)


def configured_weights(info: DataInfo, cfg: Mapping[str, Any], key: str) -> ResolvedWeights | None:
    """The resolved weights of ``model.<key>`` (None for ``""``, random init); a clear error when the run
    did not resolve a reference the config names."""
    if not cfg.get(key):
        return None
    resolved = info.weights.get(f"model.{key}")
    if resolved is None:
        raise FerbenchError(f"model.{key}={cfg[key]!r} was not resolved before the run (the runner resolves weights "
                            f"references into DataInfo.weights); set model.{key}='' for random initialisation")
    return resolved


def pooled_features(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """A timm model's pooled pre-logit embedding ``[B, num_features]`` (before its classifier)."""
    return model.forward_head(model.forward_features(images), pre_logits=True)
