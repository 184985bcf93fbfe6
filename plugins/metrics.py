"""Built-in metrics: accuracy, mean class accuracy, macro-F1, per-class recall, confusion matrix."""
from __future__ import annotations

from typing import Callable

from ferbench import hookimpl, metrics
from ferbench.specs import MetricSpec


@hookimpl
def register_metrics(register: Callable[[MetricSpec], None]) -> None:
    register(MetricSpec("accuracy", metrics.accuracy, description="overall accuracy"))
    register(MetricSpec("mean_class_accuracy", metrics.mean_class_accuracy,
                        description="mean of per-class recalls (balanced accuracy)"))
    register(MetricSpec("macro_f1", metrics.macro_f1, description="unweighted mean of per-class F1"))
    register(MetricSpec("per_class_recall", metrics.per_class_recall, kind="per_class",
                        description="recall of each class"))
    register(MetricSpec("confusion_matrix", metrics.confusion_matrix, kind="matrix", higher_is_better=False,
                        description="counts [true, predicted]"))
