"""The trainer: one fold of one method, from a fresh model (or its last checkpoint) to scored weights.

:meth:`Trainer.fit` reads as its steps: restore the last checkpoint, then per epoch train, score the
held-out part the selection rule monitors, step epoch-wise schedules and checkpoint; finally keep the
selected weights and score the test part. Pre-trainers (``score`` None) skip selection and scoring.
Checkpoints hold plain types and tensors only, so they load with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import math
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
from tqdm.auto import tqdm

from .errors import UsageError
from .loader import ArrayBatches
from .method import Batch, DataInfo, Method, OptimizerSlot, StepContext
from .settings import Selection

ScoreFunction = Callable[[np.ndarray, np.ndarray], float]  # (labels, probabilities) -> score
EpochCallback = Callable[[int, dict[str, float]], None]


@dataclass
class FoldLoaders:
    """Batches of a fold's parts; ``val`` is None when the fold has no validation part; ``preview`` holds
    a few held-out images for the method's image grids."""

    train: ArrayBatches
    val: ArrayBatches | None
    test: ArrayBatches
    test_labels: np.ndarray
    val_labels: np.ndarray | None = None
    preview: ArrayBatches | None = None


@dataclass
class FoldResult:
    """What a trained fold hands back to the runner."""

    probabilities: np.ndarray | None  # None for a pre-trainer
    selected_epoch: int
    selection: dict[str, Any]
    curves: list[tuple[int, str, float]]
    train_seconds: float
    eval_seconds: float
    images_per_second: float
    weights: dict[str, torch.Tensor]  # the selected epoch's exported weights (CPU)
    outputs: dict[str, np.ndarray] = field(default_factory=dict)  # extra per-sample test outputs
    images: dict[str, np.ndarray] = field(default_factory=dict)  # named uint8 image grids


@dataclass
class Progress:
    """Training state saved in every checkpoint (plain types only)."""

    next_epoch: int = 0
    curves: list[tuple[int, str, float]] = field(default_factory=list)
    best_epoch: int = -1
    best_score: float = -math.inf
    train_seconds: float = 0.0
    images: int = 0

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Progress:
        progress = cls(**state)
        progress.curves = [tuple(curve) for curve in progress.curves]  # type: ignore[misc]
        return progress


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


def _autocast(device: torch.device, amp_dtype: torch.dtype | None) -> Any:
    return torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None)


@torch.inference_mode()
def predict_probabilities(method: Method, batches: ArrayBatches, amp_dtype: torch.dtype | None,
                          outputs: dict[str, list[torch.Tensor]] | None = None) -> np.ndarray:
    """Softmax class probabilities for every sample of ``batches``, in row order; with ``outputs``
    also collects the method's extra per-sample outputs."""
    method.eval()
    probabilities = []
    for batch in batches.epoch():
        with _autocast(batches.device, amp_dtype):
            logits = method.predict(batch)
            extra = method.sample_outputs(batch) if outputs is not None else {}
        probabilities.append(torch.softmax(logits.float(), dim=1).cpu())
        for name, value in extra.items():
            outputs.setdefault(name, []).append(value.float().cpu())  # type: ignore[union-attr]
    return torch.cat(probabilities).numpy()


def cpu_weights(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A detached, contiguous CPU copy of a state dict (no tensor shares storage with another)."""
    return {name: value.detach().to("cpu", copy=True).contiguous() for name, value in state.items()}


class Checkpoint:
    """A fold's resume state on disk. Each save goes through a per-process temporary file and keeps the
    previous checkpoint, so a truncated or unreadable file costs at most one epoch."""

    def __init__(self, path: Path, warn: Callable[[str], None] | None = None) -> None:
        self.path = path
        self.previous = path.with_name(path.stem + ".prev" + path.suffix)
        self.warn = warn or (lambda message: print(f"ferbench: warning: {message}", file=sys.stderr))

    def save(self, state: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        try:
            torch.save(state, tmp)
            if self.path.exists():
                os.replace(self.path, self.previous)
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)

    def load(self) -> dict[str, Any] | None:
        """The newest readable checkpoint, or None (an unreadable one is set aside and reported)."""
        for candidate in (self.path, self.previous):
            if not candidate.exists():
                continue
            try:
                return torch.load(candidate, map_location="cpu", weights_only=True)
            except Exception as exc:  # noqa: BLE001 - any unreadable file is set aside the same way
                aside = candidate.with_name(candidate.name + ".unreadable")
                os.replace(candidate, aside)
                self.warn(f"checkpoint {candidate} is unreadable ({exc.__class__.__name__}); moved to {aside.name}, "
                          "resuming from the previous checkpoint or from scratch")
        return None

    def remove(self) -> None:
        for path in (self.path, self.previous):
            path.unlink(missing_ok=True)


class Trainer:
    """Trains ``method`` on a fold, resuming from ``checkpoint``, and scores the selected weights."""

    def __init__(self, method: Method, loaders: FoldLoaders, info: DataInfo, config: dict[str, Any],
                 device: torch.device, seed: int, checkpoint: Checkpoint, score: ScoreFunction | None,
                 on_epoch_end: EpochCallback | None = None, progress: bool | None = None,
                 description: str = "") -> None:
        self.method, self.loaders, self.info, self.device, self.seed = method, loaders, info, device, seed
        self.train_cfg = config["train"]
        self.checkpoint, self.score, self.on_epoch_end = checkpoint, score, on_epoch_end
        self.rule = Selection(self.train_cfg["selection"]) if score is not None else Selection.FINAL
        self.show_progress, self.description = progress, description
        method.to(device)
        self.slots: dict[str, OptimizerSlot] = method.configure_optimizers()
        use_amp = bool(self.train_cfg["amp"]) and device.type == "cuda"
        self.amp_dtype = torch.float16 if use_amp else None
        self.scaler = torch.amp.GradScaler(device.type, enabled=use_amp)
        self.state = Progress()
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.ctx = StepContext(slots=self.slots, scaler=self.scaler, device=device, amp_dtype=self.amp_dtype,
                               grad_clip=self.train_cfg["grad_clip"], accum_steps=self.train_cfg["grad_accum_steps"])

    def fit(self) -> FoldResult:
        """Restore, train the remaining epochs, then keep and score the selected weights."""
        self.restore()
        epochs = self.train_cfg["epochs"]
        bar = tqdm(range(self.state.next_epoch, epochs), desc=self.description or "epochs", unit="epoch",
                   initial=self.state.next_epoch, total=epochs, dynamic_ncols=True,
                   disable=None if self.show_progress is None else not self.show_progress)
        for epoch in bar:
            metrics = self.train_epoch(epoch, quiet=bar.disable)
            metrics.update(self.monitor(epoch))
            self.step_epoch_schedules(metrics)
            self.end_epoch(epoch, metrics)
            bar.set_postfix({k: f"{v:.3f}" for k, v in metrics.items() if k != "lr"})
        bar.close()
        return self.finish()

    def restore(self) -> None:
        """Continue from the last readable checkpoint, if any."""
        saved = self.checkpoint.load()
        if saved is None:
            return
        self.method.load_state_dict(saved["model"])
        for name, slot in self.slots.items():
            slot.load_state_dict(saved["slots"][name])
        self.scaler.load_state_dict(saved["scaler"])
        self.state = Progress.from_state(saved["progress"])
        self.best_weights = saved["best_weights"]

    def train_epoch(self, epoch: int, quiet: bool | None = None) -> dict[str, float]:
        """One pass over the training part; returns the mean of each logged loss and the learning rate."""
        seed_everything(self.seed, 0, epoch)
        self.method.train()
        self.ctx.epoch = epoch
        accum, n_batches = self.train_cfg["grad_accum_steps"], len(self.loaders.train)
        log_every = self.train_cfg["log_every"] or max(1, n_batches // 10)
        sums: dict[str, torch.Tensor] = {}
        started = time.perf_counter()
        batches: Iterable[Batch] = tqdm(self.loaders.train.epoch(epoch), total=n_batches, leave=False, unit="batch",
                                        desc=f"epoch {epoch + 1}/{self.train_cfg['epochs']}", disable=quiet,
                                        dynamic_ncols=True)
        for index, batch in enumerate(batches):
            self.ctx.update = (index + 1) % accum == 0 or index + 1 == n_batches
            logs = self.method.training_step(batch, self.ctx)
            if self.ctx.update:
                self.scaler.update()
                self.ctx.end_window()
            for name, value in logs.items():
                sums[name] = sums.get(name, 0.0) + value.detach().float()
            self.state.images += len(batch)
            if not quiet and (index + 1) % log_every == 0:
                batches.set_postfix({k: f"{float(v) / (index + 1):.3f}" for k, v in sums.items()})  # type: ignore[attr-defined]
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.state.train_seconds += time.perf_counter() - started
        metrics = {name if name.startswith("train_") else f"train_{name}": float(total) / max(n_batches, 1)
                   for name, total in sums.items()}  # a step's "loss" is logged as train_loss, "train_loss" too
        first = next(iter(self.slots.values()), None)
        metrics["lr"] = float(first.optimizer.param_groups[0]["lr"]) if first else math.nan
        return metrics

    def monitor(self, epoch: int) -> dict[str, float]:
        """Score the part the selection rule watches and remember the best epoch's weights."""
        if not self.rule.monitors:
            return {}
        part, labels = ((self.loaders.val, self.loaders.val_labels) if self.rule is Selection.VAL
                        else (self.loaders.test, self.loaders.test_labels))
        value = self.score(labels, predict_probabilities(self.method, part, self.amp_dtype))  # type: ignore[misc]
        if value > self.state.best_score:
            self.state.best_epoch, self.state.best_score = epoch, value
            self.best_weights = cpu_weights(self.method.state_dict())
        return {f"{self.rule}_{self.train_cfg['selection_metric']}": value}

    def step_epoch_schedules(self, metrics: dict[str, float]) -> None:
        for slot in self.slots.values():
            if slot.monitor and slot.monitor not in metrics:
                raise UsageError(f"the LR schedule monitors {slot.monitor!r}, which is not an epoch metric; "
                                 f"available: {', '.join(sorted(metrics))}")
            if slot.scheduler is not None and slot.interval == "epoch":
                slot.scheduler.step(*([metrics[slot.monitor]] if slot.monitor else []))

    def end_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        """Record the epoch's curves, checkpoint, and tell the observers."""
        self.state.curves.extend((epoch, name, value) for name, value in metrics.items())
        self.state.next_epoch = epoch + 1
        self.checkpoint.save({"model": self.method.state_dict(),
                              "slots": {name: slot.state_dict() for name, slot in self.slots.items()},
                              "scaler": self.scaler.state_dict(), "progress": asdict(self.state),
                              "best_weights": self.best_weights})
        if self.on_epoch_end is not None:
            self.on_epoch_end(epoch, metrics)

    def finish(self) -> FoldResult:
        """Load the selected epoch's weights, keep them, render image grids and score the test part."""
        epochs = self.train_cfg["epochs"]
        if self.rule.monitors:
            if self.best_weights is not None:
                self.method.load_state_dict(self.best_weights)
            selected = self.state.best_epoch
            selection = {"rule": str(self.rule), "epoch": selected, "metric": self.train_cfg["selection_metric"],
                         "value": self.state.best_score}
        else:
            selected, selection = epochs - 1, {"rule": str(Selection.FINAL), "epoch": epochs - 1}
        started = time.perf_counter()
        outputs: dict[str, list[torch.Tensor]] = {}
        probabilities = (predict_probabilities(self.method, self.loaders.test, self.amp_dtype, outputs)
                         if self.score is not None else None)
        eval_seconds = time.perf_counter() - started
        return FoldResult(probabilities=probabilities, selected_epoch=selected, selection=selection,
                          curves=self.state.curves, train_seconds=self.state.train_seconds, eval_seconds=eval_seconds,
                          images_per_second=self.state.images / max(self.state.train_seconds, 1e-9),
                          weights=cpu_weights(self.method.export_state_dict()),
                          outputs={name: torch.cat(parts).numpy() for name, parts in outputs.items()},
                          images=self.render_images())

    @torch.inference_mode()
    def render_images(self) -> dict[str, np.ndarray]:
        """The method's image grids of the preview images (none when it draws none)."""
        if self.loaders.preview is None:
            return {}
        self.method.eval()
        batch = next(iter(self.loaders.preview.epoch()))
        with _autocast(self.device, self.amp_dtype):
            return {name: np.asarray(grid, dtype=np.uint8) for name, grid in self.method.images(batch).items()}
