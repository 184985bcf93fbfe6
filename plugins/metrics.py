"""Built-in metrics: accuracy, mean class accuracy, macro-F1, per-class recall, confusion matrix.

Functions are named by path, so registering them imports neither numpy nor the metric code.
"""
from __future__ import annotations

from typing import Callable

from ferbench import hookimpl
from ferbench.settings import ACCURACY, MACRO_F1, MEAN_CLASS_ACCURACY
from ferbench.specs import MetricSpec


@hookimpl
def register_metrics(register: Callable[[MetricSpec], None]) -> None:
    register(MetricSpec(ACCURACY, "ferbench.metrics:accuracy", description="overall accuracy", percent=True))
    register(MetricSpec(MEAN_CLASS_ACCURACY, "ferbench.metrics:mean_class_accuracy", percent=True,
                        description="mean of per-class recalls (balanced accuracy)"))
    register(MetricSpec(MACRO_F1, "ferbench.metrics:macro_f1", description="unweighted mean of per-class F1",
                        percent=True))
    register(MetricSpec("per_class_recall", "ferbench.metrics:per_class_recall", kind="per_class",
                        description="recall of each class", percent=True))
    register(MetricSpec("confusion_matrix", "ferbench.metrics:confusion_matrix", kind="matrix",
                        higher_is_better=False, description="counts [true, predicted]"))
