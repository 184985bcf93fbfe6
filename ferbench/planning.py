"""Planning: a user's request becomes a validated :class:`Plan` before anything heavy is loaded.

Every user mistake (unknown name, bad option, missing data root, unusable weights) surfaces here as a
one-line :class:`~ferbench.errors.UsageError`, so a run never fails after minutes of training for a
reason that was knowable at the start.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import build_config, flatten, method_tree, read_config_file, set_path
from .errors import UsageError
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
    views: int = 1  # augmented views of each training image (the method's or its loss's, the larger)


def weights_keys(config: dict[str, Any]) -> dict[str, str]:
    """The config's weights references: non-empty values of keys named ``weights`` or ``*_weights``."""
    return {path: value for path, value in flatten(config).items()
            if path.rsplit(".", 1)[-1].endswith("weights") and isinstance(value, str) and value}


def plan_run(request: RunRequest, reg: Registry | None = None, resolve_weights: bool = True) -> Plan:
    """Resolve names and build the effective config; every user mistake raises a one-line UsageError."""
    reg = reg or registry()
    method, dataset = reg.method(request.method), reg.dataset(request.dataset)
    _check_kind(method, request.kind)
    protocol = request.protocol or dataset.default_protocol
    if protocol not in dataset.protocols:
        raise UsageError(f"unknown protocol {protocol!r} for dataset {dataset.name}; "
                         f"choose one of: {', '.join(dataset.protocols)}")
    preset = request.preset or method.default_preset
    if preset not in method.presets:
        raise UsageError(f"unknown preset {preset!r} for method {method.name}; "
                         f"choose one of: {', '.join(method.presets)}")
    missing = set(method.modalities) - set(dataset.modalities)
    if missing:
        raise UsageError(f"method {method.name} needs modalities {sorted(missing)} that dataset "
                         f"{dataset.name} does not provide ({', '.join(dataset.modalities)})")
    config = _config(request, reg, method, dataset, preset)
    data_root = resolve_data_root(dataset, request.data_root)
    if request.fold is not None and not 0 <= request.fold < dataset.protocols[protocol].num_folds:
        raise UsageError(f"--fold {request.fold} is out of range: protocol {protocol} has folds "
                         f"0..{dataset.protocols[protocol].num_folds - 1}")
    loss_views = reg.loss(config["loss"]["name"]).views if "name" in config.get("loss", {}) else 1
    plan = Plan(method=method, dataset=dataset, protocol=protocol, preset=preset, config=config,
                data_root=data_root, kind=request.kind, views=max(method.views, loss_views))
    if resolve_weights:
        plan.weights = resolve_config_weights(config, request.db)
    return plan


def _check_kind(method: MethodSpec, kind: RunKind) -> None:
    if kind is RunKind.PRETRAIN and method.kind != PRETRAINER:
        raise UsageError(f"method {method.name} is not a pre-trainer; use `ferbench run` (pre-trainers: "
                         f"{', '.join(sorted(m.name for m in registry().methods.values() if m.kind == PRETRAINER)) or 'none'})")
    if kind is not RunKind.PRETRAIN and method.kind == PRETRAINER:
        raise UsageError(f"method {method.name} is a pre-trainer: run it with `ferbench pretrain`, then "
                         f"fine-tune a classifier from its weights with --set model.weights=run:<id>")


def _config(request: RunRequest, reg: Registry, method: MethodSpec, dataset: DatasetSpec,
            preset: str) -> dict[str, Any]:
    file_overrides = read_config_file(request.config_file) if request.config_file else {}
    choices = {**method.choices, **{f"dataset.{k}": v for k, v in dataset.option_choices.items()}}
    base = method_tree(method.defaults, method.presets[preset], method.dataset_presets.get(preset, {}).get(dataset.name))
    config = build_config(base, dataset.options, file_overrides, request.assignments, choices, reg.losses)
    selection_metric = config["train"]["selection_metric"]
    scalar_metrics = sorted(name for name, spec in reg.metrics.items() if spec.kind == "scalar")
    if selection_metric not in scalar_metrics:
        raise UsageError(f"invalid value {selection_metric!r} for train.selection_metric; "
                         f"choose one of: {', '.join(scalar_metrics)}")
    return config


def resolve_config_weights(config: dict[str, Any], db: str | None) -> dict[str, ResolvedWeights]:
    """Resolve (download or find, then hash) every weights reference of the config."""
    if not weights_keys(config):
        return {}
    from .store import Store
    from .weights import resolve

    store = Store(db)
    return {path: resolve(ref, store=store) for path, ref in weights_keys(config).items()}


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
