"""What plugins register: light, declarative descriptions of datasets, methods and metrics.

Specs name their implementation as an ``"module:attribute"`` string so that listing plugins never
imports torch or a model file; :func:`load_object` imports it when a run needs it.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from .errors import FerbenchError


def load_object(path: str) -> Any:
    """Import ``"package.module:attribute"`` and return the attribute."""
    module_name, _, attribute = path.partition(":")
    if not attribute:
        raise FerbenchError(f"implementation path {path!r} must look like 'package.module:attribute'")
    return getattr(importlib.import_module(module_name), attribute)


@dataclass(frozen=True)
class ProtocolSpec:
    """An evaluation protocol of a dataset.

    ``kind`` is one of ``official`` (the dataset's fixed partition), ``kfold`` (stratified k-fold),
    ``subject_kfold`` (k-fold grouped by subject id), ``predefined`` (a published fold assignment: fold
    k tests the rows whose ``FERData.fold`` is k), ``repeated_split`` (random subject-independent
    train/test split repeated ``repeats`` times) or ``repeated_subject_kfold`` (``repeats`` times: draw
    ``subject_subset`` subjects, 0 = all, and run a ``folds``-fold cross-validation over them, e.g.
    BU-3DFE's 60 subjects x 10 folds x 100 repeats; folds are numbered repeat-major). ``seed`` fixes the split itself: it is part of the
    protocol, not of the run, so every method is scored on the same folds. ``group_by_subject``
    makes ``repeated_split`` and validation carving keep each subject on one side.
    """

    name: str
    kind: str
    description: str = ""
    folds: int = 1
    test_fraction: float = 0.4
    repeats: int = 1
    seed: int = 0
    group_by_subject: bool = True
    subject_subset: int = 0

    @property
    def num_folds(self) -> int:
        """How many train/test folds the protocol yields."""
        return {"official": 1, "kfold": self.folds, "subject_kfold": self.folds, "predefined": self.folds,
                "repeated_subject_kfold": self.folds * self.repeats}.get(self.kind, self.repeats)


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset: its classes, modalities, protocols and a loader ``(data_root, options) -> FERData``.

    ``classes`` is the class set under the default options; an option may select another (e.g. six
    classes without surprise): the loaded ``FERData.classes`` is what a run records and scores.
    ``reference_counts`` are the official per-split class counts (for the default options), printed
    beside the counts found by ``ferbench data check``; ``reference_counts_by`` gives other counts where
    an option changes them (option -> value -> split -> class -> count, e.g. FERPlus's vote source).
    ``option_labels`` (option -> value -> words, e.g. ``train_on_valid: {True: "train + valid"}``) name
    option values in leaderboard titles; values without one are shown as ``option=value``.
    """

    name: str
    loader: str
    classes: tuple[str, ...]
    protocols: Mapping[str, ProtocolSpec]
    default_protocol: str
    description: str = ""
    modalities: tuple[str, ...] = ("rgb",)
    needs_data_root: bool = True
    options: Mapping[str, Any] = field(default_factory=dict)
    option_choices: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    homepage: str = ""
    layouts: str = ""  # the on-disk layouts the loader reads, shown in errors and `ferbench datasets`
    reference_counts: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # split -> class -> count
    reference_counts_by: Mapping[str, Mapping[Any, Mapping[str, Mapping[str, int]]]] = field(default_factory=dict)
    option_labels: Mapping[str, Mapping[Any, str]] = field(default_factory=dict)

    def reference_for(self, options: Mapping[str, Any]) -> tuple[str, Mapping[str, Mapping[str, int]]]:
        """``(which, counts)``: the reference counts under ``options`` and the ``option=value`` that
        selected them (``""`` for the default ``reference_counts``)."""
        for option, by_value in self.reference_counts_by.items():
            value = options.get(option, self.options.get(option))
            if value in by_value:
                return f"{option}={value}", by_value[value]
        return "", self.reference_counts


#: Kinds of method: a classifier is trained on labels and scored; a pre-trainer learns from images alone
#: (``ferbench pretrain``), is never scored, and keeps weights that classifiers start from (``run:<id>``).
CLASSIFIER, PRETRAINER = "classifier", "pretrainer"


@dataclass(frozen=True)
class MethodSpec:
    """A method: presets and a factory ``(config, data_info) -> Method``.

    Every method ships at least the ``tiny`` preset (seconds on a CPU) and the ``paper`` preset (the
    paper's sizes and hyper-parameters). ``defaults`` is merged under every preset, so a preset states
    only what differs; ``dataset_presets[preset][dataset]`` overrides a preset for one dataset (e.g. a
    paper's per-dataset epochs). ``choices`` restricts string options, keyed by dotted path. ``views`` is
    how many augmented views of each training image the method wants (a selected loss may ask for more).
    """

    name: str
    factory: str
    presets: Mapping[str, Mapping[str, Any]]
    description: str = ""
    paper: str = ""
    modalities: tuple[str, ...] = ("rgb",)
    choices: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    default_preset: str = "paper"
    kind: str = CLASSIFIER
    defaults: Mapping[str, Any] = field(default_factory=dict)
    dataset_presets: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)
    views: int = 1


@dataclass(frozen=True)
class LossSpec:
    """A training loss selectable by any method through ``loss.name``.

    ``factory`` (``"module:attribute"``) is called as ``factory(options, info)`` and returns a
    :class:`ferbench.losses.Loss`. ``options`` are the loss's settings with their defaults: they become
    the config keys ``loss.<option>`` when ``loss.name`` selects this loss. ``views`` is how many augmented
    views of each training image the loss needs (contrastive losses: 2).
    """

    name: str
    factory: str
    options: Mapping[str, Any] = field(default_factory=dict)
    choices: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    views: int = 1
    description: str = ""


MetricFunction = Callable[[np.ndarray, np.ndarray, np.ndarray, int], Any]


@dataclass(frozen=True)
class MetricSpec:
    """A metric computed from stored predictions: ``fn(labels, predictions, probabilities, num_classes)``.

    ``kind`` is ``scalar`` (a float, aggregated as mean +- std over folds and seeds), ``per_class``
    (a vector, one value per class) or ``matrix``.
    """

    name: str
    fn: MetricFunction
    kind: str = "scalar"
    higher_is_better: bool = True
    description: str = ""
