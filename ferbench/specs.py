"""What plugins register: light, declarative descriptions of datasets, methods and metrics.

Specs name their implementation as an ``"module:attribute"`` string so that listing plugins never
imports torch or a model file; :func:`load_object` imports it when a run needs it.
"""
from __future__ import annotations

import difflib
import importlib
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Union

from .config import check_presets
from .constraints import Constraint
from .errors import PluginError

if TYPE_CHECKING:
    import numpy as np


def load_object(path: str) -> Any:
    """Import ``"package.module:attribute"`` and return the attribute; a module that fails to import or
    a missing attribute is a one-line :class:`PluginError` naming the plugin that declared ``path``."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise PluginError(f"{_declared_by(path)}implementation path {path!r} must look like 'package.module:attribute'")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - third-party code: any failure is the plugin's
        from .plugins import describe_exception

        raise PluginError(f"{_declared_by(path)}cannot import module {module_name!r} of {path!r}: "
                          f"{describe_exception(exc)}") from exc
    if not hasattr(module, attribute):
        close = difflib.get_close_matches(attribute, [n for n in dir(module) if not n.startswith("_")], n=1)
        hint = f"; did you mean {module_name}:{close[0]}?" if close else ""
        raise PluginError(f"{_declared_by(path)}module {module_name!r} has no attribute {attribute!r} "
                          f"(implementation path {path!r}){hint}")
    return getattr(module, attribute)


def _declared_by(path: str) -> str:
    """``"plugin 'p' (dist 1.0), method 'm': "`` for the spec that names ``path`` ("" when none does)."""
    from .plugins import KINDS, registry

    reg = registry()
    for kind in KINDS:
        for name, spec in reg.table(kind).items():
            if path in (getattr(spec, attr, None) for attr in ("loader", "factory", "fn")):
                return f"{reg.origin(kind, name)}, {kind} {name!r}: "
    return ""


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


#: The kinds of :class:`ProtocolSpec`.
PROTOCOL_KINDS = ("official", "kfold", "subject_kfold", "predefined", "repeated_split", "repeated_subject_kfold")


def _check_path(name: str, what: str, path: Any) -> None:
    if not isinstance(path, str) or ":" not in path:
        raise PluginError(f"{name!r}: {what} must be a 'package.module:attribute' string, got {path!r}")


def _check_member(name: str, what: str, value: Any, choices: Mapping[str, Any]) -> None:
    if value not in choices:
        raise PluginError(f"{name!r}: {what} {value!r} is not one of its {', '.join(choices) or 'none'}")


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

    def validate(self) -> None:
        """Raise PluginError when the spec contradicts itself (checked when a plugin registers it)."""
        _check_path(self.name, "loader", self.loader)
        for protocol in self.protocols.values():
            if protocol.kind not in PROTOCOL_KINDS:
                raise PluginError(f"dataset {self.name!r}: protocol {protocol.name!r} has kind {protocol.kind!r}; "
                                  f"choose one of: {', '.join(PROTOCOL_KINDS)}")
        _check_member(self.name, "default_protocol", self.default_protocol, self.protocols)


#: Kinds of method: a classifier is trained on labels and scored; a pre-trainer learns from images alone
#: (``ferbench pretrain``), is never scored, and keeps weights that classifiers start from (``run:<id>``).
CLASSIFIER, PRETRAINER = "classifier", "pretrainer"


@dataclass(frozen=True)
class MethodSpec:
    """A method: presets and a factory ``(config, data_info) -> Method``.

    Every method ships at least the ``tiny`` preset (seconds on a CPU) and the ``paper`` preset (the
    paper's sizes and hyper-parameters). ``defaults`` is merged under every preset, so a preset states
    only what differs; ``dataset_presets[preset][dataset]`` overrides a preset for one dataset (e.g. a
    paper's per-dataset epochs). ``choices`` restricts string options, keyed by dotted path;
    ``constraints`` declares the limits of the method's numeric, list and name settings (ranges, lengths,
    ``divides``), keyed by dotted path, checked with the engine's when a run is planned. ``views`` is
    how many augmented views of each training image the method wants (a selected loss may ask for more).

    The presets are checked when the spec is created (:func:`ferbench.config.check_presets`): a key
    that is neither the engine's, nor in ``defaults``, nor set by every preset is refused.
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
    constraints: Mapping[str, Constraint] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_presets(self.name, self.defaults, self.presets, self.dataset_presets)

    def validate(self) -> None:
        """Raise PluginError when the spec contradicts itself (checked when a plugin registers it)."""
        _check_path(self.name, "factory", self.factory)
        _check_member(self.name, "default_preset", self.default_preset, self.presets)
        if self.kind not in (CLASSIFIER, PRETRAINER):
            raise PluginError(f"method {self.name!r}: kind {self.kind!r} must be {CLASSIFIER!r} or {PRETRAINER!r}")


@dataclass(frozen=True)
class LossSpec:
    """A training loss selectable by any method through ``loss.name``.

    ``factory`` (``"module:attribute"``) is called as ``factory(options, info)`` and returns a
    :class:`ferbench.losses.Loss`. ``options`` are the loss's settings with their defaults: they become
    the config keys ``loss.<option>`` when ``loss.name`` selects this loss; ``choices`` and ``constraints``
    (by option name) restrict them. ``views`` is how many augmented views of each training image the loss
    needs (contrastive losses: 2).
    """

    name: str
    factory: str
    options: Mapping[str, Any] = field(default_factory=dict)
    choices: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    views: int = 1
    description: str = ""
    constraints: Mapping[str, Constraint] = field(default_factory=dict)

    def validate(self) -> None:
        """Raise PluginError when the spec contradicts itself (checked when a plugin registers it)."""
        _check_path(self.name, "factory", self.factory)


MetricFunction = Callable[["np.ndarray", "np.ndarray", "np.ndarray", int], Any]
#: Kinds of metric: a number per fold, a vector of one value per class, a class x class matrix.
METRIC_KINDS = ("scalar", "per_class", "matrix")


@dataclass(frozen=True)
class MetricSpec:
    """A metric computed from stored predictions: ``fn(labels, predictions, probabilities, num_classes)``.

    ``fn`` is the function or its ``"module:attribute"`` path (imported when first scored, which keeps
    registration light). ``kind`` is ``scalar`` (a float, aggregated as mean +- std over folds and
    seeds), ``per_class`` (a vector, one value per class) or ``matrix``. How a value is shown:
    ``percent`` (a fraction in [0, 1] shown times 100, as accuracies are) and ``format`` (a Python format
    spec; default ``.2f`` for percentages, ``.4g`` otherwise), e.g. a kappa of 0.8 prints ``0.8``.
    """

    name: str
    fn: Union[MetricFunction, str]
    kind: str = "scalar"
    higher_is_better: bool = True
    description: str = ""
    percent: bool = False
    format: str = ""

    @property
    def function(self) -> MetricFunction:
        """The metric function (imported on first use when ``fn`` is a path)."""
        return load_object(self.fn) if isinstance(self.fn, str) else self.fn

    def shown(self, value: float) -> float:
        """``value`` in the unit it is shown in (times 100 for a percentage)."""
        return 100 * value if self.percent else value

    def format_value(self, value: Any) -> str:
        """``value`` as the metric declares (``—`` when missing or not finite)."""
        try:
            number = float(value)
        except (TypeError, ValueError):
            return "—"
        if not math.isfinite(number):
            return "—"
        return format(self.shown(number), self.format or (".2f" if self.percent else ".4g"))

    def validate(self) -> None:
        """Raise PluginError when the spec contradicts itself (checked when a plugin registers it)."""
        if self.kind not in METRIC_KINDS:
            raise PluginError(f"metric {self.name!r}: kind {self.kind!r}; choose one of: {', '.join(METRIC_KINDS)}")
        if isinstance(self.fn, str):
            _check_path(self.name, "fn", self.fn)
        elif not callable(self.fn):
            raise PluginError(f"metric {self.name!r}: fn must be a function or a 'module:attribute' string")
        try:
            format(1.0, self.format)
        except ValueError as exc:
            raise PluginError(f"metric {self.name!r}: format {self.format!r} is not a float format spec: {exc}") from exc
