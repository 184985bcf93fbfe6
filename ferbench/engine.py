"""The training and evaluation loop that every method plugs into.

One call of :func:`train_fold` trains a fresh method on a fold's training part, checkpoints after
every epoch (resuming from the last one if a checkpoint exists), selects the epoch to score as the
config says and returns the selected weights' class probabilities on the test part.
"""
from __future__ import annotations

import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from .errors import UsageError
from .loader import ArrayBatches
from .method import DataInfo, Method, StepContext

ScoreFunction = Callable[[np.ndarray, np.ndarray], float]  # (labels, probabilities) -> score
EpochCallback = Callable[[int, dict[str, float]], None]


@dataclass
class FoldResult:
    """What a trained fold hands back to the runner."""

    probabilities: np.ndarray
    selected_epoch: int
    selection: dict[str, Any]
    curves: list[tuple[int, str, float]]
    train_seconds: float
    eval_seconds: float
    images_per_second: float


@dataclass
class FoldLoaders:
    """Batches of a fold's parts; ``val`` is None when the fold has no validation part."""

    train: ArrayBatches
    val: ArrayBatches | None
    test: ArrayBatches
    test_labels: np.ndarray
    val_labels: np.ndarray | None = None


@dataclass
class _Progress:
    """Training state saved in every checkpoint."""

    next_epoch: int = 0
    curves: list[tuple[int, str, float]] = field(default_factory=list)
    best_epoch: int = -1
    best_score: float = -math.inf
    train_seconds: float = 0.0
    images: int = 0


def select_device(choice: str) -> torch.device:
    """``auto`` picks CUDA when available, else the CPU."""
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(choice)


def seed_everything(*key: int) -> None:
    """Seed Python, numpy and torch from non-negative integers, e.g. (seed, fold, epoch), so that a
    resumed epoch replays exactly."""
    value = int(np.random.default_rng(list(key)).integers(2**31))
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)


@torch.inference_mode()
def predict_probabilities(method: Method, batches: ArrayBatches, amp_dtype: torch.dtype | None) -> np.ndarray:
    """Softmax class probabilities for every sample of ``batches``, in row order."""
    method.eval()
    outputs = []
    for batch in batches.epoch():
        with torch.autocast(batches.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = method.predict(batch)
        outputs.append(torch.softmax(logits.float(), dim=1).cpu())
    return torch.cat(outputs).numpy()


def _save_atomic(state: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _cpu_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


def train_fold(method: Method, loaders: FoldLoaders, info: DataInfo, config: dict[str, Any],
               device: torch.device, seed: int, checkpoint: Path, score: ScoreFunction,
               on_epoch_end: EpochCallback | None = None, progress: bool | None = None,
               description: str = "") -> FoldResult:
    """Train ``method`` on the fold, resuming from ``checkpoint`` if it exists, and score the test part."""
    train_cfg = config["train"]
    method.to(device)
    slots = method.configure_optimizers()
    use_amp = bool(train_cfg["amp"]) and device.type == "cuda"
    amp_dtype = torch.float16 if use_amp else None
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp)
    state = _Progress()
    best_weights: dict[str, torch.Tensor] | None = None
    rule = train_cfg["selection"]

    if checkpoint.exists():
        saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
        method.load_state_dict(saved["model"])
        for name, slot in slots.items():
            slot.load_state_dict(saved["slots"][name])
        scaler.load_state_dict(saved["scaler"])
        state = saved["progress"]
        best_weights = saved.get("best_weights")

    accum = train_cfg["grad_accum_steps"]
    ctx = StepContext(slots=slots, scaler=scaler, device=device, amp_dtype=amp_dtype,
                      grad_clip=train_cfg["grad_clip"], accum_steps=accum)
    epochs = train_cfg["epochs"]
    epoch_bar = tqdm(range(state.next_epoch, epochs), desc=description or "epochs", unit="epoch",
                     initial=state.next_epoch, total=epochs, disable=None if progress is None else not progress,
                     dynamic_ncols=True)
    for epoch in epoch_bar:
        seed_everything(seed, 0, epoch)
        method.train()
        ctx.epoch = epoch
        sums: dict[str, torch.Tensor] = {}
        n_batches = len(loaders.train)
        started = time.perf_counter()
        batch_bar = tqdm(loaders.train.epoch(epoch), total=n_batches, desc=f"epoch {epoch + 1}/{epochs}",
                         unit="batch", leave=False, disable=epoch_bar.disable, dynamic_ncols=True)
        log_every = train_cfg["log_every"] or max(1, n_batches // 10)
        for index, batch in enumerate(batch_bar):
            ctx.update = (index + 1) % accum == 0 or index + 1 == n_batches
            logs = method.training_step(batch, ctx)
            if ctx.update:
                scaler.update()
                ctx.end_window()
            for name, value in logs.items():
                sums[name] = sums.get(name, 0.0) + value.detach().float()
            state.images += len(batch)
            if not batch_bar.disable and (index + 1) % log_every == 0:
                batch_bar.set_postfix({k: f"{float(v) / (index + 1):.3f}" for k, v in sums.items()})
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        state.train_seconds += time.perf_counter() - started
        metrics = {f"train_{name}": float(total) / max(n_batches, 1) for name, total in sums.items()}
        metrics["lr"] = float(next(iter(slots.values())).optimizer.param_groups[0]["lr"]) if slots else math.nan
        if rule in ("val", "test"):
            part, labels = (loaders.val, loaders.val_labels) if rule == "val" else (loaders.test, loaders.test_labels)
            value = score(labels, predict_probabilities(method, part, amp_dtype))
            metrics[f"{rule}_{train_cfg['selection_metric']}"] = value
            if value > state.best_score:
                state.best_epoch, state.best_score = epoch, value
                best_weights = _cpu_state(method)
        for slot in slots.values():
            if slot.monitor and slot.monitor not in metrics:
                raise UsageError(f"the LR schedule monitors {slot.monitor!r}, which is not an epoch metric; "
                                 f"available: {', '.join(sorted(metrics))}")
            if slot.scheduler is not None and slot.interval == "epoch":
                slot.scheduler.step(*([metrics[slot.monitor]] if slot.monitor else []))
        state.curves.extend((epoch, name, value) for name, value in metrics.items())
        state.next_epoch = epoch + 1
        epoch_bar.set_postfix({k: f"{v:.3f}" for k, v in metrics.items() if k != "lr"})
        _save_atomic({"model": method.state_dict(), "slots": {n: s.state_dict() for n, s in slots.items()},
                      "scaler": scaler.state_dict(), "progress": state, "best_weights": best_weights}, checkpoint)
        if on_epoch_end is not None:
            on_epoch_end(epoch, metrics)
    epoch_bar.close()

    if rule == "final":
        selection = {"rule": "final", "epoch": epochs - 1}
        selected_epoch = epochs - 1
    else:
        if best_weights is not None:
            method.load_state_dict(best_weights)
        selected_epoch = state.best_epoch
        selection = {"rule": rule, "epoch": state.best_epoch, "metric": train_cfg["selection_metric"],
                     "value": state.best_score}
    started = time.perf_counter()
    probabilities = predict_probabilities(method, loaders.test, amp_dtype)
    eval_seconds = time.perf_counter() - started
    return FoldResult(probabilities=probabilities, selected_epoch=selected_epoch, selection=selection,
                      curves=state.curves, train_seconds=state.train_seconds, eval_seconds=eval_seconds,
                      images_per_second=state.images / max(state.train_seconds, 1e-9))

