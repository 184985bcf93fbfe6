"""Timing helpers shared by the benchmark scripts."""
from __future__ import annotations

import time

import torch

from ferbench.loader import ArrayBatches


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so that wall-clock times are honest."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def pipeline_images_per_second(batches: ArrayBatches, epoch: int = 0) -> float:
    """Images/s of one epoch of batches with no model: gather, copy, augmentation, normalisation."""
    started = time.perf_counter()
    for _ in batches.epoch(epoch):
        pass
    synchronize(batches.device)
    return len(batches.rows) / (time.perf_counter() - started)
