"""Settings and names read by several modules, defined once (no string literals spread around).

Strings are ``str`` enums, so they compare equal to the plain strings stored in configs and in the
database (``Selection.TEST == "test"``) and print as themselves.
"""
from __future__ import annotations

from enum import Enum


class StrEnum(str, Enum):
    """A string enum whose members format as their value (Python 3.10 has no ``enum.StrEnum``)."""

    def __str__(self) -> str:
        return self.value


class Selection(StrEnum):
    """Which epoch's weights a fold scores (config ``train.selection``)."""

    FINAL = "final"  # the last epoch: no selection at all
    VAL = "val"  # the best epoch on a validation part carved from (or given with) the training data
    TEST = "test"  # the best epoch on the test part: optimistic, flagged everywhere

    @property
    def monitors(self) -> bool:
        """Whether the rule scores every epoch on a held-out part."""
        return self is not Selection.FINAL


class Status(StrEnum):
    """Life cycle of a run and of a fold in the database."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    PARTIAL = "partial"  # per-fold jobs recorded some folds; the others are pending or failed


class RunKind(StrEnum):
    """What a run did: trained and scored a classifier, only scored given weights, or pre-trained."""

    TRAIN = "train"
    EVAL = "eval"
    PRETRAIN = "pretrain"


class Modality(StrEnum):
    """Image modalities a dataset provides and a method consumes."""

    RGB = "rgb"
    DEPTH = "depth"


class Part(StrEnum):
    """Parts of a fold (and the official split names of a dataset)."""

    TRAIN = "train"
    VAL = "val"
    TEST = "test"


#: Built-in scalar metrics, stored as fractions; the leaderboard ranks by the first.
ACCURACY, MEAN_CLASS_ACCURACY, MACRO_F1 = "accuracy", "mean_class_accuracy", "macro_f1"
RANKED_METRICS: tuple[str, ...] = (ACCURACY, MEAN_CLASS_ACCURACY, MACRO_F1)
