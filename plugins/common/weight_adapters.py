"""Weights adapters for the checkpoints the built-in methods start from, each written once.

An adapter maps a source state dict onto a module's names and shapes (``(state_dict, module) -> Adapted``);
``ferbench.weights.load_weights(module, weights, adapter="<name>")`` applies it, loads non-strictly and
reports by name what did not match. Importing this module registers:

- ``timm``: any timm checkpoint into a timm model of the same family. Runs the family's
  ``checkpoint_filter_fn`` when it has one (ViT: position-embedding resampling for another image size,
  patch-embedding resampling for another patch size, other checkpoint layouts), adapts the first
  convolution to another number of input channels (timm's ``adapt_input_conv``), and drops a classifier
  whose shape differs from the module's (a fresh head for the dataset's classes).
- ``mae-encoder``: a facebookresearch/mae checkpoint (or ferbench's MAE pre-trainer export) into a timm
  ViT: drops the decoder and ``mask_token``; with ``global_pool='avg'`` timm's ViT has no final ``norm``
  but a fresh ``fc_norm``, so the pretrained ``norm`` is dropped and reported, as MAE fine-tuning does.
  Then as ``timm``.
- ``mae``: encoder and decoder in MAE layout, loaded as they are (refused if the checkpoint has no decoder).
- ``facenet``: facenet-pytorch's Inception-ResNet-V1 (VGGFace2) state dict into a module using
  facenet-pytorch's attribute names; its ``logits`` (8631 VGGFace2 identities) are always dropped.
- ``hsemotion``: HSEmotion's EfficientNet-B2 re-saved as a timm ``efficientnet_b2`` state dict
  (``ferbench weights convert --from-pickle``); its AffectNet ``classifier`` is always dropped (its class
  order is AffectNet's, not the dataset's). Then as ``timm``.
"""
from __future__ import annotations

import sys
from typing import Any, Callable, Iterable

from torch import nn

from ferbench.errors import FerbenchError
from ferbench.weights import Adapted, exact_adapter, register_adapter


def _drop(adapted: Adapted, keys: Iterable[str], note: str) -> Adapted:
    """Remove ``keys`` from the state dict, recording them as dropped with ``note``."""
    keys = [k for k in keys if k in adapted.state_dict]
    if keys:
        for key in keys:
            del adapted.state_dict[key]
        adapted.dropped.extend(keys)
        adapted.notes.append(note)
    return adapted


def _with_prefix(state: dict[str, Any], *prefixes: str) -> list[str]:
    return [k for k in state if k.startswith(prefixes)]


def _family_filter_fn(module: nn.Module) -> Callable[..., dict[str, Any]] | None:
    """The ``checkpoint_filter_fn`` of the timm module that defines ``module``'s class, if any."""
    module_name = type(module).__module__
    if not module_name.startswith("timm."):
        return None
    return getattr(sys.modules.get(module_name), "checkpoint_filter_fn", None)


def _timm_cfg(module: nn.Module) -> dict[str, Any]:
    cfg = getattr(module, "pretrained_cfg", None) or getattr(module, "default_cfg", None) or {}
    return dict(cfg)


def _as_tuple(value: str | Iterable[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def _adapt_input_convs(adapted: Adapted, module: nn.Module) -> None:
    """Sum or repeat the first convolution's input channels when the module takes another number of them."""
    from timm.models import adapt_input_conv

    own = module.state_dict()
    for conv in _as_tuple(_timm_cfg(module).get("first_conv")):
        key = f"{conv}.weight"
        source, target = adapted.state_dict.get(key), own.get(key)
        if source is None or target is None or source.ndim != 4 or source.shape[1] == target.shape[1]:
            continue
        adapted.state_dict[key] = adapt_input_conv(target.shape[1], source)
        adapted.notes.append(f"{key} adapted from {source.shape[1]} to {target.shape[1]} input channels")


def _drop_other_classifier(adapted: Adapted, module: nn.Module) -> None:
    """Drop classifier tensors whose shape differs from the module's (or that the module lacks)."""
    own = module.state_dict()
    for classifier in _as_tuple(_timm_cfg(module).get("classifier")):
        keys = [k for k in _with_prefix(adapted.state_dict, classifier + ".")
                if k not in own or own[k].shape != adapted.state_dict[k].shape]
        _drop(adapted, keys, f"classifier {classifier} not loaded (another number of classes): it starts fresh")


def timm_adapter(state: dict[str, Any], module: nn.Module) -> Adapted:
    """A timm checkpoint into a timm model of the same family (see the module docstring)."""
    filter_fn = _family_filter_fn(module)
    adapted = Adapted(dict(filter_fn(state, module) if filter_fn else state))
    _adapt_input_convs(adapted, module)
    _drop_other_classifier(adapted, module)
    return adapted


def _chain(first: Adapted, then: Adapted) -> Adapted:
    return Adapted(then.state_dict, first.dropped + then.dropped, first.notes + then.notes)


def mae_encoder_adapter(state: dict[str, Any], module: nn.Module) -> Adapted:
    """The encoder of an MAE checkpoint into a timm ViT (see the module docstring)."""
    adapted = _drop(Adapted(dict(state)), _with_prefix(state, "decoder_", "mask_token"),
                    "MAE decoder and mask_token not used by an encoder")
    own = module.state_dict()
    if "norm.weight" not in own and "fc_norm.weight" in own:
        _drop(adapted, _with_prefix(adapted.state_dict, "norm."),
              "global_pool=avg: the pretrained final norm is unused, fc_norm and head start fresh (MAE fine-tuning)")
    return _chain(adapted, timm_adapter(adapted.state_dict, module))


def mae_adapter(state: dict[str, Any], module: nn.Module) -> dict[str, Any]:
    """Encoder and decoder of an MAE checkpoint, in MAE layout, as they are."""
    if "decoder_embed.weight" not in state:
        raise FerbenchError("these MAE weights hold no decoder (no decoder_embed.weight): use adapter mae-encoder, or "
                            "weights saved with their decoder (facebookresearch/mae's mae_visualize_*.pth, a ferbench "
                            "MAE pre-training run)")
    return exact_adapter(state, module)


def facenet_adapter(state: dict[str, Any], module: nn.Module) -> Adapted:
    """facenet-pytorch's Inception-ResNet-V1 (VGGFace2) without its identity classifier."""
    return _drop(Adapted(dict(state)), _with_prefix(state, "logits."),
                 "facenet logits (VGGFace2 identities) dropped")


def hsemotion_adapter(state: dict[str, Any], module: nn.Module) -> Adapted:
    """HSEmotion's EfficientNet-B2 state dict into timm's efficientnet_b2, without its AffectNet classifier."""
    adapted = _drop(Adapted(dict(state)), _with_prefix(state, "classifier."),
                    "HSEmotion's AffectNet classifier dropped: it starts fresh for the dataset's classes")
    return _chain(adapted, timm_adapter(adapted.state_dict, module))


ADAPTERS = {"timm": timm_adapter, "mae-encoder": mae_encoder_adapter, "mae": mae_adapter,
            "facenet": facenet_adapter, "hsemotion": hsemotion_adapter}
for _name, _fn in ADAPTERS.items():
    register_adapter(_name, _fn)
