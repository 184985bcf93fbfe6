"""What lifecycle hooks receive about a run."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RunInfo:
    """Identity and settings of a run: method x dataset protocol x config x seed."""

    run_id: str
    method: str
    dataset: str
    protocol: str
    preset: str
    seed: int
    config: dict[str, Any]
    config_hash: str
    manifest_hash: str
    folds: tuple[int, ...]
    device: str
    resumed: bool = False
    kind: str = "train"  # train, eval or pretrain
