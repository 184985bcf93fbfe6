"""Weights that a config names (``model.weights``, ``model.*_weights``), as the runner resolved them.

The runner resolves every weights reference of the config before the run and hands the results to the
method in ``DataInfo.weights``, keyed by dotted config path. ``ferbench.weights`` is imported lazily so
that this module imports wherever the weights seam is not installed yet.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ferbench.errors import FerbenchError
from ferbench.method import DataInfo

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ferbench.weights import LoadReport, ResolvedWeights


def configured_weights(info: DataInfo, path: str, ref: str) -> ResolvedWeights | None:
    """The resolved weights of config key ``path`` holding ``ref``; None when ``ref`` is empty."""
    if not ref:
        return None
    resolved = info.weights.get(path)
    if resolved is None:
        raise FerbenchError(f"{path}={ref!r} reached the method unresolved; weights references are resolved by the "
                            "runner before the run (ferbench.weights), which this installation lacks")
    return resolved


def read_weights(resolved: Any) -> dict[str, torch.Tensor]:
    """The tensors of a resolved weights file (or a state dict given as is)."""
    if isinstance(resolved, dict):
        return resolved
    from ferbench.weights import read_state_dict

    return read_state_dict(resolved.path)


def load_into(module: nn.Module, source: Any, adapter: str, min_fraction: float = 0.9) -> LoadReport:
    """:func:`ferbench.weights.load_weights`, imported when needed."""
    from ferbench.weights import load_weights

    return load_weights(module, source, adapter=adapter, min_fraction=min_fraction)
