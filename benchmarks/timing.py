"""Timing helpers shared by the benchmark scripts."""
from __future__ import annotations

import time

import torch

from ferbench.loader import ArrayBatches


def effective_config(method: str, dataset: str, preset: str, assignments: list) -> dict:
    """The config a ``ferbench run`` of ``method`` on ``dataset`` with ``preset`` and ``--set`` pairs would use."""
    from ferbench.config import build_config, method_tree
    from ferbench.plugins import registry

    reg = registry()
    spec, data = reg.method(method), reg.dataset(dataset)
    base = method_tree(spec.defaults, spec.presets[preset], spec.dataset_presets.get(preset, {}).get(dataset))
    return build_config(base, data.options, None, assignments, spec.choices, reg.losses)


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
