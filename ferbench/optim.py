"""Optimizers and learning-rate schedules shared by method plugins.

Config (the ``optim`` section of a preset)::

    name: adamw | adam | sgd       lr, weight_decay, betas (adam*), momentum (sgd)
    layer_decay: 1.0               BEiT/MAE layer-wise lr decay for ViTs (1.0 = off)
    schedule: cosine | step | plateau | constant
    warmup_epochs, min_lr          (cosine)   milestones, gamma (step)
    plateau_patience, gamma, plateau_monitor  (plateau: lr *= gamma after `patience` epochs without
                                   improvement of the monitored epoch metric)
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

import torch
from torch import nn

from .method import OptimizerSlot

def _no_weight_decay(model: nn.Module) -> set[str]:
    names = getattr(model, "no_weight_decay", lambda: set())()
    return {n for n in names}


def param_groups(model: nn.Module, weight_decay: float, layer_decay: float = 1.0,
                 num_layers: int | None = None, lr_scale: float = 1.0) -> list[dict[str, Any]]:
    """Parameter groups without weight decay on biases, norms and tokens, with optional layer decay.

    With ``layer_decay < 1`` a ViT's patch embedding/tokens are layer 0, block ``i`` is layer ``i + 1``
    and everything else (final norm, head) is the top layer; a group's ``lr_scale`` is
    ``layer_decay ** (num_layers + 1 - layer)``.
    """
    skip = _no_weight_decay(model)
    blocks = num_layers if num_layers is not None else len(getattr(model, "blocks", []))
    groups: dict[tuple[int, bool], dict[str, Any]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        decay = not (param.ndim <= 1 or name.endswith(".bias") or name in skip)
        layer = _layer_id(name, blocks)
        group = groups.setdefault((layer, decay), {
            "params": [], "weight_decay": weight_decay if decay else 0.0,
            "lr_scale": lr_scale * layer_decay ** (blocks + 1 - layer)})
        group["params"].append(param)
    return list(groups.values())


def _layer_id(name: str, num_layers: int) -> int:
    if name.startswith(("cls_token", "pos_embed", "patch_embed", "reg_token", "dist_token")):
        return 0
    if name.startswith("blocks."):
        return int(name.split(".")[1]) + 1
    return num_layers + 1


def build_optimizer(groups: Iterable[dict[str, Any]], cfg: Mapping[str, Any]) -> torch.optim.Optimizer:
    """The optimizer named by ``cfg['name']``; each group's lr is ``cfg['lr'] * group['lr_scale']``."""
    groups = [dict(g, lr=cfg["lr"] * g.get("lr_scale", 1.0)) for g in groups]
    if cfg["name"] == "sgd":
        return torch.optim.SGD(groups, lr=cfg["lr"], momentum=cfg.get("momentum", 0.9))
    kind = torch.optim.AdamW if cfg["name"] == "adamw" else torch.optim.Adam
    return kind(groups, lr=cfg["lr"], betas=tuple(cfg.get("betas", (0.9, 0.999))))


def build_schedule(optimizer: torch.optim.Optimizer, cfg: Mapping[str, Any], steps_per_epoch: int,
                   epochs: int) -> tuple[Any, str, str | None]:
    """(scheduler, interval, monitored metric) for ``cfg['schedule']``."""
    schedule = cfg["schedule"]
    if schedule == "cosine":
        warmup = int(round(cfg.get("warmup_epochs", 0) * steps_per_epoch))
        total = max(epochs * steps_per_epoch, 1)
        floor = cfg.get("min_lr", 0.0) / cfg["lr"] if cfg["lr"] else 0.0

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = (step - warmup) / max(total - warmup, 1)
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor), "step", None
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
                   num_layers: int | None = None) -> OptimizerSlot:
    """One optimizer over ``model`` with the configured groups and schedule."""
    groups = param_groups(model, cfg["weight_decay"], cfg.get("layer_decay", 1.0), num_layers)
    optimizer = build_optimizer(groups, cfg)
    scheduler, interval, monitor = build_schedule(optimizer, cfg, steps_per_epoch, epochs)
    return OptimizerSlot(optimizer=optimizer, scheduler=scheduler, interval=interval, monitor=monitor)
