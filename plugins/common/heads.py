"""Small heads shared by methods and losses: contrastive projection heads, an MLP classifier, and the
step that sizes a loss's own head to a method's embedding. Imports torch only when a head is built, so
registration modules can read :data:`PROJECTIONS`."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ferbench.errors import UsageError

if TYPE_CHECKING:
    from torch import nn

#: Projection heads of contrastive losses: ``none`` (the embedding itself), ``linear`` (one layer) or
#: ``dense`` (linear-ReLU-linear, hidden width = embedding width, as in SimCLR/SupCon).
PROJECTIONS = ("none", "linear", "dense")


def projection_head(kind: str, in_dim: int, out_dim: int) -> nn.Module:
    """The projection head ``kind`` (see :data:`PROJECTIONS`) from ``in_dim`` to ``out_dim`` features."""
    from torch import nn

    if kind == "none":
        return nn.Identity()
    if kind == "linear":
        return nn.Linear(in_dim, out_dim)
    if kind == "dense":
        return nn.Sequential(nn.Linear(in_dim, in_dim), nn.ReLU(inplace=True), nn.Linear(in_dim, out_dim))
    raise UsageError(f"unknown projection head {kind!r}; choose one of: {', '.join(PROJECTIONS)}")


def mlp_classifier(in_dim: int, hidden: int, num_classes: int, dropout: float) -> nn.Module:
    """Linear -> BatchNorm -> ReLU -> Dropout -> Linear: the classification head of the neural-resizer code."""
    from torch import nn

    return nn.Sequential(nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                         nn.Dropout(dropout), nn.Linear(hidden, num_classes))
