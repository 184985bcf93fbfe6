"""Built-in loss: cross-entropy (plain, label-smoothed, soft targets, class-weighted)."""
from __future__ import annotations

from typing import Callable

from ferbench import hookimpl
from ferbench.constraints import Constraint
from ferbench.specs import LossSpec

#: Options of the built-in ``ce`` loss (implemented in :mod:`ferbench.losses`).
CE_OPTIONS = {"label_smoothing": 0.0, "soft_targets": False, "class_weights": False}


@hookimpl
def register_losses(register: Callable[[LossSpec], None]) -> None:
    register(LossSpec("ce", "ferbench.losses:CrossEntropy", options=CE_OPTIONS,
                      constraints={"label_smoothing": Constraint(low=0.0, high=1.0, high_open=True)},
                      description="cross-entropy (label smoothing, soft targets, class weights)"))
