"""Optimizers and learning-rate schedules shared by method plugins.

Config (the ``optim`` section of a preset; defaults in :data:`ferbench.config.OPTIM_DEFAULTS`)::

    name: adamw | adam | sgd       lr, weight_decay, betas (adam*), momentum (sgd)
    layer_decay: 1.0               BEiT/MAE layer-wise lr decay for ViTs (1.0 = off)
    schedule: cosine | step | plateau | onecycle | constant
    warmup_epochs, min_lr          (cosine; onecycle: min_lr is the floor of every group)
    milestones, gamma              (step: lr *= gamma at each milestone epoch)
    plateau_patience, gamma, plateau_monitor  (plateau: lr *= gamma after `patience` epochs without
                                   improvement of the monitored epoch metric)
    pct_start, div_factor          (onecycle: rise from lr/div_factor to lr over pct_start of the steps,
                                   then cosine down to min_lr)
"""
from __future__ import annotations

import math
import re
from typing import Any, Callable, Iterable, Mapping

import torch
from torch import nn

from .method import OptimizerSlot

_EMBEDDING = re.compile(r"(?:^|\.)(cls_token|pos_embed|patch_embed|reg_token|dist_token|mask_token)(?:\.|$)")
_BLOCK = re.compile(r"(?:^|\.)blocks\.(\d+)\.")


def _no_weight_decay(model: nn.Module) -> set[str]:
    """Full parameter names that a (possibly nested) module exempts from weight decay."""
    names: set[str] = set()
    for prefix, module in model.named_modules():
        declared = getattr(module, "no_weight_decay", None)
        if callable(declared):
            names |= {f"{prefix}.{name}" if prefix else name for name in declared()}
    return names


def transformer_depth(model: nn.Module) -> int:
    """Number of ViT blocks (``blocks.N``) found at any nesting depth of ``model``."""
    indices = [int(m.group(1)) for name, _ in model.named_parameters() if (m := _BLOCK.search(name))]
    return max(indices) + 1 if indices else 0


def layer_id(name: str, num_layers: int) -> int:
    """Layer of a parameter for layer-wise lr decay: embeddings 0, block ``i`` ``i + 1``, the rest the top."""
    if _EMBEDDING.search(name):
        return 0
    block = _BLOCK.search(name)
    return int(block.group(1)) + 1 if block else num_layers + 1


def param_groups(model: nn.Module, weight_decay: float, layer_decay: float = 1.0,
                 num_layers: int | None = None, lr_scale: float = 1.0,
                 exclude: set[int] | None = None) -> list[dict[str, Any]]:
    """Parameter groups without weight decay on biases, norms and tokens, with optional layer decay.

    With ``layer_decay < 1`` the ViT's patch embedding and tokens are layer 0, block ``i`` is layer
    ``i + 1`` and everything else (final norm, head, modules around the ViT) is the top layer; a group's
    ``lr_scale`` is ``layer_decay ** (num_layers + 1 - layer)``. Blocks are found at any depth, so the
    decay keeps working when the ViT is wrapped (behind a resizer, inside a method). Parameters whose
    ``id`` is in ``exclude`` are left out (they have an optimizer of their own).
    """
    skip = _no_weight_decay(model)
    blocks = num_layers if num_layers is not None else transformer_depth(model)
    groups: dict[tuple[int, bool], dict[str, Any]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad or (exclude and id(param) in exclude):
            continue
        decay = not (param.ndim <= 1 or name.endswith(".bias") or name in skip)
        layer = layer_id(name, blocks) if layer_decay != 1.0 else blocks + 1
        group = groups.setdefault((layer, decay), {
            "params": [], "weight_decay": weight_decay if decay else 0.0,
            "lr_scale": lr_scale * layer_decay ** (blocks + 1 - layer)})
        group["params"].append(param)
    return list(groups.values())


def build_optimizer(groups: Iterable[dict[str, Any]], cfg: Mapping[str, Any]) -> torch.optim.Optimizer:
    """The optimizer named by ``cfg['name']``; each group's lr is ``cfg['lr'] * group['lr_scale']``."""
    groups = [dict(g, lr=cfg["lr"] * g.get("lr_scale", 1.0)) for g in groups]
    if cfg["name"] == "sgd":
        return torch.optim.SGD(groups, lr=cfg["lr"], momentum=cfg["momentum"])
    kind = torch.optim.AdamW if cfg["name"] == "adamw" else torch.optim.Adam
    return kind(groups, lr=cfg["lr"], betas=tuple(cfg["betas"]))


def _cosine(warmup: int, total: int, floor: float) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(total - warmup, 1)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    return factor


def _one_cycle(rise: int, total: int, start: float, floor: float) -> Callable[[int], float]:
    """Factor of the peak lr: cosine from ``start`` up to 1 over ``rise`` steps, then down to ``floor``."""
    def factor(step: int) -> float:
        if step < rise:
            return start + (1 - start) * 0.5 * (1 - math.cos(math.pi * step / max(rise, 1)))
        progress = min((step - rise) / max(total - rise, 1), 1.0)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    return factor


def build_schedule(optimizer: torch.optim.Optimizer, cfg: Mapping[str, Any], steps_per_epoch: int,
                   epochs: int) -> tuple[Any, str, str | None]:
    """(scheduler, interval, monitored metric) for ``cfg['schedule']``."""
    schedule = cfg["schedule"]
    total = max(epochs * steps_per_epoch, 1)
    if schedule == "cosine":
        warmup = int(round(cfg["warmup_epochs"] * steps_per_epoch))
        factors = [_cosine(warmup, total, cfg["min_lr"] / g["lr"] if g["lr"] else 0.0) for g in optimizer.param_groups]
        return torch.optim.lr_scheduler.LambdaLR(optimizer, factors), "step", None
    if schedule == "onecycle":
        rise = int(round(cfg["pct_start"] * total))
        factors = [_one_cycle(rise, total, 1 / cfg["div_factor"], cfg["min_lr"] / g["lr"] if g["lr"] else 0.0)
                   for g in optimizer.param_groups]
        return torch.optim.lr_scheduler.LambdaLR(optimizer, factors), "step", None
    if schedule == "step":
        return (torch.optim.lr_scheduler.MultiStepLR(optimizer, cfg["milestones"], gamma=cfg["gamma"]),
                "epoch", None)
    if schedule == "plateau":
        monitor = cfg["plateau_monitor"]
        mode = "min" if monitor.endswith("loss") else "max"
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=mode, factor=cfg["gamma"],
                                                               patience=cfg["plateau_patience"])
        return scheduler, "epoch", monitor
    return None, "epoch", None


def optimizer_slot(model: nn.Module, cfg: Mapping[str, Any], steps_per_epoch: int, epochs: int,
                   num_layers: int | None = None, exclude: set[int] | None = None,
                   groups: list[dict[str, Any]] | None = None) -> OptimizerSlot:
    """One optimizer over ``model`` (or over explicit ``groups``) with the configured groups and schedule."""
    if groups is None:
        groups = param_groups(model, cfg["weight_decay"], cfg["layer_decay"], num_layers, exclude=exclude)
    optimizer = build_optimizer(groups, cfg)
    scheduler, interval, monitor = build_schedule(optimizer, cfg, steps_per_epoch, epochs)
    return OptimizerSlot(optimizer=optimizer, scheduler=scheduler, interval=interval, monitor=monitor)
