"""Mini-batches straight from uint8 arrays held in memory (or memory-mapped).

No per-sample Python: each batch is one fancy-index gather, one host-to-device copy and batch-wise
augmentation on the device. On an accelerator a background thread gathers (and pins) the next batch
while the device computes on the current one, so data loading does not starve the model. On the CPU
batches are prepared inline: torch's intra-op threads already occupy every core, and a producer thread
competing with them cost 15-20 % of training throughput on the 2-core machine (benchmarks/harness_overhead.py),
against 3 % for the preparation itself.
A method that wants several augmented views of each image gets them from independent draws of the
same seeded generator, so an epoch replays exactly on resume. In a distributed run each rank trains on
its shard of every epoch's order (:meth:`ferbench.distributed.World.shard`).
"""
from __future__ import annotations

import copy
import queue
import threading
from typing import Any, Iterator, Mapping

import numpy as np
import torch

from .augment import augment
from .distributed import World
from .method import Batch

_STOP = object()


class Normalizer:
    """Per-modality ``(x - mean) / std``, on ``[0, 1]`` floats or straight from uint8 pixels."""

    def __init__(self, stats: Mapping[str, tuple[list[float], list[float]]], device: torch.device) -> None:
        self.stats = {name: (torch.tensor(mean, device=device).view(1, -1, 1, 1),
                             torch.tensor(std, device=device).view(1, -1, 1, 1))
                      for name, (mean, std) in stats.items()}

    def __call__(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {name: x.sub(self.stats[name][0]).div_(self.stats[name][1]) for name, x in inputs.items()}

    def from_uint8(self, name: str, pixels: torch.Tensor) -> torch.Tensor:
        """Normalise ``[B, C, H, W]`` uint8 pixels in one pass (no intermediate ``[0, 1]`` tensor)."""
        mean, std = self.stats[name]
        return pixels.float().sub_(mean * 255).div_(std * 255)


class ArrayBatches:
    """Batches over ``rows`` of per-modality uint8 arrays ``[N, H, W, C]``."""

    def __init__(self, arrays: Mapping[str, np.ndarray], labels: np.ndarray, rows: np.ndarray,
                 batch_size: int, device: torch.device, normalizer: Normalizer, *, train: bool = False,
                 augment_cfg: Mapping[str, Any] | None = None, seed: int = 0,
                 sample_weights: np.ndarray | None = None, soft_labels: np.ndarray | None = None,
                 views: int = 1, world: World | None = None) -> None:
        self.arrays, self.labels, self.rows = arrays, labels, np.asarray(rows, dtype=np.int64)
        self.soft_labels = soft_labels
        self.batch_size, self.device, self.normalizer = batch_size, device, normalizer
        self.train, self.augment_cfg, self.seed = train, augment_cfg, seed
        self.sample_weights = sample_weights
        self.views = views if train else 1
        self.world = world if train and world is not None else World()  # only training batches are sharded
        self.pin = device.type == "cuda"
        self.prefetch = device.type != "cpu"

    def __len__(self) -> int:
        rows = len(self.rows) // self.world.size if self.world.distributed else len(self.rows)
        return -(-rows // self.batch_size)

    def with_rows(self, rows: np.ndarray) -> ArrayBatches:
        """The same batches over other rows (e.g. a rank's slice of the test part)."""
        other = copy.copy(self)
        other.rows = np.asarray(rows, dtype=np.int64)
        return other

    def _order(self, epoch: int) -> np.ndarray:
        if not self.train:
            return self.rows
        rng = np.random.default_rng([self.seed, epoch])
        if self.sample_weights is not None:
            p = self.sample_weights / self.sample_weights.sum()
            return self.world.shard(rng.choice(self.rows, size=len(self.rows), replace=True, p=p))
        return self.world.shard(rng.permutation(self.rows))

    def _gather(self, rows: np.ndarray) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        host = {name: torch.from_numpy(np.ascontiguousarray(array[rows])) for name, array in self.arrays.items()}
        if self.soft_labels is not None:
            host["_soft_labels"] = torch.from_numpy(self.soft_labels[rows])
        labels = torch.from_numpy(self.labels[rows])
        if self.pin:
            host = {name: x.pin_memory() for name, x in host.items()}
        return host, labels, torch.from_numpy(rows)

    def _host_batches(self, order: np.ndarray) -> Iterator[Any]:
        """Gathered host batches, from a background thread at most two ahead when ``prefetch``."""
        if not self.prefetch:
            for start in range(0, len(order), self.batch_size):
                yield self._gather(order[start:start + self.batch_size])
            return
        slots: queue.Queue[Any] = queue.Queue(maxsize=2)
        stop = threading.Event()

        def produce() -> None:
            try:
                for start in range(0, len(order), self.batch_size):
                    if stop.is_set():
                        return
                    item = self._gather(order[start:start + self.batch_size])
                    slots.put(item)
            except BaseException as exc:  # surfaced in the consumer
                slots.put(exc)
            slots.put(_STOP)

        worker = threading.Thread(target=produce, daemon=True)
        worker.start()
        try:
            while (item := slots.get()) is not _STOP:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            while worker.is_alive():
                try:
                    slots.get_nowait()
                except queue.Empty:
                    worker.join(0.01)

    def _view(self, pixels: dict[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
        """One normalised (and, when training with augmentation, augmented) view of a batch's pixels."""
        if self.train and self.augment_cfg is not None:
            inputs = {name: x.float().div_(255) for name, x in pixels.items()}
            return augment(inputs, self.augment_cfg, generator, self.normalizer)
        return {name: self.normalizer.from_uint8(name, x) for name, x in pixels.items()}

    def epoch(self, epoch: int = 0) -> Iterator[Batch]:
        """The batches of one epoch (shuffled and augmented reproducibly from ``(seed, epoch)`` when training)."""
        key = [self.seed, epoch, 1] + ([self.world.rank] if self.world.distributed else [])  # ranks draw apart
        generator = torch.Generator().manual_seed(int(np.random.default_rng(key).integers(2**62)))

        def prepare(host: dict[str, torch.Tensor], labels: torch.Tensor, rows: torch.Tensor) -> Batch:
            soft = host.pop("_soft_labels", None)
            # channels first in memory too: the conversions and augmentations run twice as fast as on strides
            pixels = {name: x.to(self.device, non_blocking=True).permute(0, 3, 1, 2).contiguous()
                      for name, x in host.items()}
            return Batch(views=[self._view(pixels, generator) for _ in range(self.views)],
                         labels=labels.to(self.device, non_blocking=True), rows=rows,
                         soft_labels=None if soft is None else soft.to(self.device, non_blocking=True))

        for item in self._host_batches(self._order(epoch)):
            yield prepare(*item)
