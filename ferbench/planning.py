"""Planning: a user's request becomes a validated :class:`Plan` before anything heavy is loaded.

Every user mistake (unknown name, bad option, missing data root, unusable weights) surfaces here as a
one-line :class:`~ferbench.errors.UsageError`, so a run never fails after minutes of training for a
reason that was knowable at the start.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from .config import build_config, flatten, method_tree, read_config_file, set_path
from .errors import FerbenchError, UsageError, did_you_mean
from .plugins import Registry, registry
from .settings import RunKind
from .specs import PRETRAINER, DatasetSpec, MethodSpec

if TYPE_CHECKING:
    from .weights import ResolvedWeights

DATA_ROOT_ENV = "FERBENCH_DATA_ROOT"


@dataclass
class RunRequest:
    """What the user asked for on the command line."""

    method: str
    dataset: str
    protocol: str | None = None
    preset: str | None = None
    config_file: str | None = None
    assignments: list[tuple[str, Any]] = field(default_factory=list)
    seed: int = 0
    fold: int | None = None
    device: str = "auto"
    data_root: str | None = None
    db: str | None = None
    progress: bool | None = None
    fresh: bool = False
    kind: RunKind = RunKind.TRAIN
    weights: str | None = None  # ``ferbench eval --weights REF``: the weights scored without training
    allow_test_images_in_pretraining: bool = False
    wait: bool = False  # wait for another process executing the same run instead of refusing
    deterministic: bool = False  # deterministic algorithms only (bit-for-bit repeatable on CUDA too)
    #: execute only these folds of the whole protocol's run (a sweep's per-fold jobs): the run is the same
    #: as without it, and whichever part records its last fold marks it completed
    part_folds: tuple[int, ...] | None = None


@dataclass
class Plan:
    """A validated request: specs, effective config, data location and resolved weights."""

    method: MethodSpec
    dataset: DatasetSpec
    protocol: str
    preset: str
    config: dict[str, Any]
    data_root: Path | None
    kind: RunKind = RunKind.TRAIN
    weights: dict[str, ResolvedWeights] = field(default_factory=dict)  # config path -> resolved file
    #: config path -> fold -> resolved file, for ``run:<id>`` naming no fold of a run that kept several
    fold_weights: dict[str, dict[int, ResolvedWeights]] = field(default_factory=dict)
    #: the classes the scored model predicts when they are not the dataset's (evaluating a run's weights
    #: on another dataset: predictions are mapped onto the dataset's classes by name)
    model_classes: tuple[str, ...] | None = None
    views: int = 1  # augmented views of each training image (the method's or its loss's, the larger)

    def weights_for_fold(self, fold: int) -> dict[str, ResolvedWeights]:
        """The resolved weights a fold's method starts from (or, for an evaluation, is scored with)."""
        chosen = dict(self.weights)
        for path, per_fold in self.fold_weights.items():
            if fold not in per_fold:
                raise UsageError(f"{path}: the referenced run kept weights for folds {sorted(per_fold)}, not for "
                                 f"fold {fold} of this protocol; name one fold (run:<id>/fold-K) to use it everywhere")
            chosen[path] = per_fold[fold]
        return chosen


def weights_keys(config: dict[str, Any]) -> dict[str, str]:
    """The config's weights references: non-empty values of keys named ``weights`` or ``*_weights``."""
    return {path: value for path, value in flatten(config).items()
            if path.rsplit(".", 1)[-1].endswith("weights") and isinstance(value, str) and value}


#: Where an evaluation-only run records the weights it scores (beside the config's own references).
EVAL_WEIGHTS = "eval.weights"


def plan_run(request: RunRequest, reg: Registry | None = None, resolve_weights: bool = True,
             base_config: dict[str, Any] | None = None) -> Plan:
    """Resolve names and build the effective config; every user mistake raises a one-line UsageError.

    ``base_config`` replaces the preset's tree (an evaluation reuses the config of the run it scores)."""
    reg = reg or registry()
    method, dataset = reg.method(request.method), reg.dataset(request.dataset)
    _check_kind(method, request.kind)
    protocol = request.protocol or dataset.default_protocol
    if protocol not in dataset.protocols:
        raise UsageError(f"unknown protocol {protocol!r} for dataset {dataset.name}"
                         f"{did_you_mean(protocol, dataset.protocols)}; "
                         f"choose one of: {', '.join(dataset.protocols)}")
    preset = request.preset or method.default_preset
    if preset not in method.presets:
        raise UsageError(f"unknown preset {preset!r} for method {method.name}{did_you_mean(preset, method.presets)}; "
                         f"choose one of: {', '.join(method.presets)}")
    missing = set(method.modalities) - set(dataset.modalities)
    if missing:
        raise UsageError(f"method {method.name} needs modalities {sorted(missing)} that dataset "
                         f"{dataset.name} does not provide ({', '.join(dataset.modalities)})")
    config = _config(request, reg, method, dataset, preset, base_config)
    data_root = resolve_data_root(dataset, request.data_root)
    if request.fold is not None and not 0 <= request.fold < dataset.protocols[protocol].num_folds:
        raise UsageError(f"--fold {request.fold} is out of range: protocol {protocol} has folds "
                         f"0..{dataset.protocols[protocol].num_folds - 1}")
    loss_views = reg.loss(config["loss"]["name"]).views if "name" in config.get("loss", {}) else 1
    plan = Plan(method=method, dataset=dataset, protocol=protocol, preset=preset, config=config,
                data_root=data_root, kind=request.kind, views=max(method.views, loss_views))
    if resolve_weights:
        plan.weights, plan.fold_weights = resolve_config_weights(weights_keys(config), request.db, method.weights_help)
    return plan

def plan_eval(request: RunRequest, reg: Registry | None = None) -> Plan:
    """An evaluation-only run: ``request.weights`` scored on the test part of every requested fold.

    For ``run:<id>`` weights the method must be the run's, and the run's config is reused (its dataset
    options too when the dataset is the same) unless ``--preset`` names another; the model keeps the
    classes it was trained on and its predictions are mapped onto the dataset's classes by name.
    """
    from .store import Store
    from .weights import source_run

    if not request.weights:
        raise UsageError("ferbench eval needs --weights REF (e.g. run:<run_id> of a completed run)")
    source_id = source_run(request.weights)
    source = None
    if source_id is not None:
        store = Store(request.db)
        rows = store.query("SELECT method, preset, dataset, config, classes FROM runs WHERE run_id = ?",
                           [source_id]) if store.path.exists() else []
        if not rows:
            raise UsageError(f"--weights {request.weights}: no run {source_id} in {store.path}; `ferbench runs` lists them")
        source = rows[0]
        if source["method"] != request.method:
            raise UsageError(f"--weights {request.weights} are weights of method {source['method']}, not {request.method}")
    base = None
    if source is not None and request.preset is None:
        base = dict(source["config"])
        base["dataset"] = base.get("dataset", {}) if source["dataset"] == request.dataset else {}
    plan = plan_run(replace(request, preset=request.preset or (source or {}).get("preset")), reg,
                    resolve_weights=False, base_config=base)
    plan.weights, plan.fold_weights = resolve_config_weights({EVAL_WEIGHTS: request.weights}, request.db)
    plan.model_classes = tuple(source["classes"]) if source is not None else None
    return plan


def _check_kind(method: MethodSpec, kind: RunKind) -> None:
    if kind is RunKind.PRETRAIN and method.kind != PRETRAINER:
        raise UsageError(f"method {method.name} is not a pre-trainer; use `ferbench run` (pre-trainers: "
                         f"{', '.join(sorted(m.name for m in registry().methods.values() if m.kind == PRETRAINER)) or 'none'})")
    if kind is not RunKind.PRETRAIN and method.kind == PRETRAINER:
        raise UsageError(f"method {method.name} is a pre-trainer: run it with `ferbench pretrain`, then "
                         f"fine-tune a classifier from its weights with --set model.weights=run:<id>")


def _config(request: RunRequest, reg: Registry, method: MethodSpec, dataset: DatasetSpec,
            preset: str, base: dict[str, Any] | None) -> dict[str, Any]:
    file_overrides = read_config_file(request.config_file) if request.config_file else {}
    choices = {**method.choices, **{f"dataset.{k}": v for k, v in dataset.option_choices.items()}}
    if base is None:
        base = method_tree(method.defaults, method.presets[preset],
                           method.dataset_presets.get(preset, {}).get(dataset.name))
    config = build_config(base, dataset.options, file_overrides, request.assignments, choices, reg.losses,
                          method.constraints)
    selection_metric = config["train"]["selection_metric"]
    scalar_metrics = sorted(name for name, spec in reg.metrics.items() if spec.kind == "scalar")
    if selection_metric not in scalar_metrics:
        raise UsageError(f"invalid value {selection_metric!r} for train.selection_metric"
                         f"{did_you_mean(str(selection_metric), scalar_metrics)}; "
                         f"choose one of: {', '.join(scalar_metrics)}")
    return config


def resolve_config_weights(references: dict[str, str], db: str | None, help_by_key: Mapping[str, str] | None = None
                           ) -> tuple[dict[str, ResolvedWeights], dict[str, dict[int, ResolvedWeights]]]:
    """Resolve (download or find, then hash) weights references: (single files, per-fold files). A key that
    fails is named in the error, with the method's advice on obtaining those weights when it has some."""
    if not references:
        return {}, {}
    from .store import Store
    from .weights import resolve, resolve_per_fold

    store = Store(db)
    single, per_fold = {}, {}
    for path, ref in references.items():
        try:
            folds = resolve_per_fold(ref, store)
            if folds is None:
                single[path] = resolve(ref, store=store)
            else:
                per_fold[path] = folds
        except FerbenchError as exc:
            advice = (help_by_key or {}).get(path)
            raise UsageError(f"{path}: {exc}" + (f"; {advice}" if advice else "")) from None
    return single, per_fold


def resolve_data_root(dataset: DatasetSpec, given: str | None) -> Path | None:
    """The dataset's folder from ``--data-root`` or ``$FERBENCH_DATA_ROOT``; None if it needs none."""
    if not dataset.needs_data_root:
        return None
    raw = given or os.environ.get(DATA_ROOT_ENV)
    if not raw:
        raise UsageError(f"dataset {dataset.name} needs its files: pass --data-root DIR "
                         f"(or set {DATA_ROOT_ENV}); see `ferbench datasets` for the expected layout")
    data_root = Path(raw).expanduser()
    if not data_root.is_dir():
        raise UsageError(f"data root {str(data_root)!r} for dataset {dataset.name} is not a directory")
    return data_root


def dataset_options(dataset: DatasetSpec, assignments: list[tuple[str, Any]]) -> dict[str, Any]:
    """The dataset's options with ``dataset.KEY=VALUE`` overrides, validated like a run config."""
    options = {"dataset": dict(dataset.options)}
    valid = flatten(options)
    choices = {f"dataset.{k}": v for k, v in dataset.option_choices.items()}
    for path, value in assignments:
        if not path.startswith("dataset."):
            raise UsageError(f"only dataset options can be set here, e.g. dataset.KEY=VALUE (got {path!r})")
        set_path(options, path, value, valid, choices)
    return options["dataset"]
