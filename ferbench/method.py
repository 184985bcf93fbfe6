"""The contract between a method and the engine.

A method is an ``nn.Module`` that says how to compute its losses on a batch and how to predict; the
engine owns the loop (devices, mixed precision, accumulation, clipping, checkpoints, evaluation,
epoch selection). Methods with several optimizers (adversarial training, learnable class centers)
call :meth:`StepContext.optimize` once per optimizer group, in the order the paper prescribes.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:
    from .weights import ResolvedWeights


@dataclass(frozen=True)
class DataInfo:
    """What a method may know about the data when it is built."""

    classes: tuple[str, ...]
    modalities: tuple[str, ...]
    image_size: int
    class_counts: np.ndarray  # training-part counts per class
    steps_per_epoch: int  # optimizer updates per epoch (after gradient accumulation)
    epochs: int
    #: modality -> (mean, std) per channel, as the loader normalised the inputs (to undo or redo it)
    normalization: Mapping[str, tuple[list[float], list[float]]] = field(default_factory=dict)
    #: resolved weights references of the config, keyed by dotted config path (e.g. ``model.weights``)
    weights: Mapping[str, ResolvedWeights] = field(default_factory=dict)
    #: ``[K, K]`` mean target distribution per true class on the fold's training part, when the dataset
    #: has soft labels (e.g. FERPlus crowd votes); None otherwise
    prior: np.ndarray | None = None

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)


@dataclass
class Batch:
    """A mini-batch on the run's device: one or more augmented views of each image (normalised float
    inputs per modality) and integer labels. Evaluation batches have exactly one view."""

    views: list[dict[str, torch.Tensor]]
    labels: torch.Tensor
    rows: torch.Tensor  # dataset row of each sample
    soft_labels: torch.Tensor | None = None  # [B, classes] when the dataset provides target distributions

    @property
    def inputs(self) -> dict[str, torch.Tensor]:
        """The first view: ``{modality: [B, C, H, W]}``."""
        return self.views[0]

    @property
    def rgb(self) -> torch.Tensor:
        """The RGB images of the first view ``[B, 3, H, W]``."""
        return self.inputs["rgb"]

    @property
    def depth(self) -> torch.Tensor:
        """The depth maps of the first view ``[B, C, H, W]``."""
        return self.inputs["depth"]

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class OptimizerSlot:
    """An optimizer, its optional LR scheduler (stepped per ``step`` or per ``epoch``; an epoch
    scheduler with ``monitor`` set receives that epoch metric, e.g. ReduceLROnPlateau), and whether
    the engine's gradient clipping applies to it."""

    optimizer: torch.optim.Optimizer
    scheduler: Any = None
    interval: str = "step"
    clip: bool = True
    monitor: str | None = None

    def parameters(self) -> list[torch.nn.Parameter]:
        """Every parameter this slot's optimizer updates."""
        return [p for group in self.optimizer.param_groups for p in group["params"]]

    def state_dict(self) -> dict[str, Any]:
        """Optimizer and scheduler state, for checkpoints."""
        return {"optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved."""
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])


@dataclass
class StepContext:
    """Handed to :meth:`Method.training_step`: backward, unscale, clip and step in one call."""

    slots: dict[str, OptimizerSlot]
    scaler: torch.amp.GradScaler
    device: torch.device
    amp_dtype: torch.dtype | None
    grad_clip: float = 0.0
    accum_steps: int = 1
    epoch: int = 0
    update: bool = True  # whether this batch ends an accumulation window
    #: averages gradients over the ranks of a distributed run (:meth:`ferbench.distributed.World.average_gradients`)
    gradient_sync: Callable[[Sequence[torch.nn.Parameter]], None] | None = None
    _zeroed: set[str] = field(default_factory=set)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """Mixed-precision context for the forward pass (a no-op when AMP is off)."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def optimize(self, loss: torch.Tensor, *names: str, retain_graph: bool = False) -> None:
        """Back-propagate ``loss`` into the named optimizers' parameters only (all optimizers when none
        is named) and, at the end of an accumulation window, step them: unscale, clip, step, then
        step-wise schedulers.

        Gradients never leak between optimizer slots: a generator loss that flows through the
        discriminator leaves the discriminator's gradients untouched, whatever the order of the calls
        and the accumulation. Each slot's gradients are cleared before its first backward in a window.
        ``retain_graph`` keeps the graph for a further ``optimize`` call on a loss that shares it.
        In a distributed run the named slots' gradients are averaged over the ranks before they step.
        """
        chosen = names or tuple(self.slots)
        unknown = [name for name in chosen if name not in self.slots]
        if unknown:
            raise KeyError(f"unknown optimizer slot(s) {unknown}; the method configured {sorted(self.slots)}")
        for name in chosen:
            if name not in self._zeroed:
                self.slots[name].optimizer.zero_grad(set_to_none=True)
                self._zeroed.add(name)
        params = [p for name in chosen for p in self.slots[name].parameters() if p.requires_grad]
        self.scaler.scale(loss / self.accum_steps).backward(inputs=params, retain_graph=retain_graph)
        if not self.update:
            return
        if self.gradient_sync is not None:
            self.gradient_sync(params)
        for name in chosen:
            slot = self.slots[name]
            if self.grad_clip > 0 and slot.clip:
                self.scaler.unscale_(slot.optimizer)
                torch.nn.utils.clip_grad_norm_(list(slot.parameters()), self.grad_clip)
            self.scaler.step(slot.optimizer)
            if slot.scheduler is not None and slot.interval == "step":
                slot.scheduler.step()

    def end_window(self) -> None:
        """Called by the engine after the batch that closes an accumulation window."""
        self._zeroed.clear()


class Method(nn.Module):
    """Base class for methods. Subclasses set up modules in ``__init__(config, info)`` and implement
    :meth:`configure_optimizers` and :meth:`predict` (classifiers); :meth:`training_step` defaults to
    cross-entropy on :meth:`predict`'s logits. The optional hooks below add per-sample outputs, image
    grids and a custom export of the kept weights."""

    def __init__(self, config: dict[str, Any], info: DataInfo) -> None:
        super().__init__()
        self.config = config
        self.info = info

    def configure_optimizers(self) -> dict[str, OptimizerSlot]:
        """Optimizers by name; called once, after the module is on its device."""
        raise NotImplementedError

    def predict(self, batch: Batch) -> torch.Tensor:
        """Class logits ``[B, num_classes]`` for a batch (used for evaluation)."""
        raise NotImplementedError

    def training_step(self, batch: Batch, ctx: StepContext) -> dict[str, torch.Tensor]:
        """Compute the losses of one batch, call ``ctx.optimize`` and return detached values to log."""
        with ctx.autocast():
            loss = nn.functional.cross_entropy(self.predict(batch), batch.labels)
        ctx.optimize(loss)
        return {"loss": loss.detach()}

    def sample_outputs(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Extra per-sample outputs ``{name: [B, ...]}`` recorded in the final test pass (e.g. attention
        masks); stored as a run artifact. Default: none."""
        return {}

    def images(self, batch: Batch) -> dict[str, np.ndarray]:
        """Named uint8 image grids ``[H, W, 3]`` rendered once per fold from a few held-out images (e.g.
        original / reconstruction rows); stored as PNG artifacts and shown on the run's page. Default: none."""
        return {}

    def export_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights kept when a fold ends (``run:<id>`` references load them). Default: ``state_dict()``."""
        return self.state_dict()

    def import_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Load what :meth:`export_state_dict` produced (``ferbench eval``). Default: strict ``load_state_dict``."""
        self.load_state_dict(state)

    def evaluated_parameters(self) -> int:
        """Parameters used at test time (what the leaderboard reports); a method whose training-only
        modules (a generator, a discriminator) sit beside the predictor overrides this."""
        return sum(p.numel() for p in self.parameters())
