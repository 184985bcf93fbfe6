"""Run configuration: preset + config file + ``--set`` overrides, validated against the preset's tree.

A configuration is a nested dictionary with four sections: ``model``, ``loss`` and ``optim`` belong to
the method; ``train`` and ``data`` are read by the engine (defaults in :data:`ENGINE_DEFAULTS`);
``dataset`` holds the dataset plugin's options. Keys not present in the default tree are refused, and
each value must have the type of its default (list elements: the type of the default's elements), so
typos never pass silently; numbers must be finite and within the range their :class:`Constraint`
declares (:data:`ENGINE_CONSTRAINTS`, :data:`OPTIM_CONSTRAINTS`, a method's or loss's own), so junk
settings fail before any data loads. Presets are checked when a method is registered
(:func:`check_presets`).
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
from pathlib import Path
from typing import Any, Iterable, Mapping

from .constraints import NON_NEGATIVE, POSITIVE, PROBABILITY, Constraint, check_constraints
from .errors import UsageError, did_you_mean
from .safeyaml import load_yaml, read_yaml_file
from .settings import Selection

#: Engine settings every method inherits; a preset overrides what it needs.
ENGINE_DEFAULTS: dict[str, Any] = {
    "train": {
        "epochs": 10,
        "batch_size": 64,  # per process: the global batch is batch_size x processes x grad_accum_steps
        "lr_scaling": "none",  # none | linear: learning rates x processes in a multi-process run
        "eval_batch_size": 256,
        "grad_accum_steps": 1,
        "grad_clip": 0.0,  # max global grad norm; 0 disables clipping
        "amp": True,  # mixed precision, used on CUDA only
        "selection": Selection.FINAL.value,  # final | val | test: which epoch's weights are scored
        "selection_metric": "mean_class_accuracy",
        "val_fraction": 0.1,  # carved from the training fold when selection == val
        "balanced_sampling": False,  # inverse class-frequency sampling of training batches
        "log_every": 0,  # batches between progress-bar updates of the loss (0: automatic)
        "keep_weights": True,  # keep each fold's selected weights as safetensors (``run:<id>`` references)
    },
    "data": {
        "image_size": 224,
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
        "depth_mean": [0.5],
        "depth_std": [0.25],
        "fold_statistics": False,  # z-score each modality with its training part's mean/std instead
        "fold_statistics_foreground": False,  # ... computed on non-black (face) pixels only
        "augment": {
            "hflip": 0.5,
            "rotate_degrees": 0.0,
            "scale": [1.0, 1.0],
            "translate": 0.0,
            "color_jitter": 0.0,
            "hue": 0.0,  # hue shift drawn from [-x, x] turns of the colour circle (at most 0.5)
            "jitter_affine_probability": 1.0,  # per sample: jitter + rotate/scale/translate together, or neither
            "random_erasing": 0.0,
            "erasing_area": [0.02, 0.33],  # the erased rectangle's area, as fractions of the image
        },
    },
}

ENGINE_CHOICES: dict[str, tuple[Any, ...]] = {
    "train.selection": tuple(str(rule) for rule in Selection),
    "train.lr_scaling": ("none", "linear"),  # ferbench.distributed.LR_SCALING
}

#: Most epochs a run may ask for (a typo such as 10**30 must not start an endless run).
MAX_EPOCHS = 100_000
#: Largest batch.
MAX_BATCH = 1 << 16
_RANGE_PAIR = Constraint(low=0, low_open=True, lengths=(2,), ascending=True)

#: Limits of the engine settings beyond their type (see :class:`~ferbench.constraints.Constraint`).
ENGINE_CONSTRAINTS: dict[str, Constraint] = {
    "train.epochs": Constraint(low=1, high=MAX_EPOCHS),
    "train.batch_size": Constraint(low=1, high=MAX_BATCH),
    "train.eval_batch_size": Constraint(low=1, high=MAX_BATCH),
    "train.grad_accum_steps": Constraint(low=1, high=1024),
    "train.grad_clip": NON_NEGATIVE,
    "train.val_fraction": Constraint(low=0.0, high=1.0, high_open=True),
    "train.log_every": NON_NEGATIVE,
    "data.image_size": Constraint(low=8, high=4096),
    "data.mean": Constraint(low=0.0, high=1.0, lengths=(3,)),  # of pixel values scaled to [0, 1]
    "data.std": Constraint(low=0.0, low_open=True, lengths=(3,)),
    "data.depth_mean": Constraint(low=0.0, high=1.0, lengths=(1, 3)),  # one value broadcasts over channels
    "data.depth_std": Constraint(low=0.0, low_open=True, lengths=(1, 3)),
    "data.augment.hflip": PROBABILITY,
    "data.augment.rotate_degrees": Constraint(low=0.0, high=180.0),
    "data.augment.scale": _RANGE_PAIR,
    "data.augment.translate": Constraint(low=0.0, high=1.0),
    "data.augment.color_jitter": NON_NEGATIVE,
    "data.augment.hue": Constraint(low=0.0, high=0.5),
    "data.augment.jitter_affine_probability": PROBABILITY,
    "data.augment.random_erasing": PROBABILITY,
    "data.augment.erasing_area": Constraint(low=0.0, low_open=True, high=1.0, lengths=(2,), ascending=True),
}

#: The ``optim`` section every method inherits (read by :mod:`ferbench.optim`); presets state only
#: what differs.
OPTIM_DEFAULTS: dict[str, Any] = {
    "name": "adamw",
    "lr": 1e-3,
    "weight_decay": 0.05,
    "betas": [0.9, 0.999],
    "momentum": 0.9,
    "layer_decay": 1.0,
    "schedule": "cosine",
    "warmup_epochs": 0.0,
    "min_lr": 0.0,
    "milestones": [30, 60],
    "gamma": 0.1,
    "plateau_patience": 10,
    "plateau_monitor": "train_loss",
    "pct_start": 0.3,
    "div_factor": 25.0,
}

#: Limits of the ``optim`` settings (a method with a second optimizer section re-keys them).
OPTIM_CONSTRAINTS: dict[str, Constraint] = {
    "optim.lr": Constraint(low=0.0, low_open=True, high=10.0),
    "optim.weight_decay": NON_NEGATIVE,
    "optim.betas": Constraint(low=0.0, high=1.0, high_open=True, lengths=(2,)),
    "optim.momentum": Constraint(low=0.0, high=1.0, high_open=True),
    "optim.layer_decay": Constraint(low=0.0, low_open=True, high=1.0),
    "optim.warmup_epochs": NON_NEGATIVE,
    "optim.min_lr": NON_NEGATIVE,
    "optim.milestones": Constraint(low=1, ascending=True),
    "optim.gamma": Constraint(low=0.0, low_open=True, high=1.0),
    "optim.plateau_patience": NON_NEGATIVE,
    "optim.pct_start": Constraint(low=0.0, low_open=True, high=1.0, high_open=True),
    "optim.div_factor": POSITIVE,
}

#: Valid values of the ``optim`` section's string settings.
OPTIM_CHOICES: dict[str, tuple[Any, ...]] = {
    "optim.name": ("adamw", "adam", "sgd"),
    "optim.schedule": ("cosine", "step", "plateau", "onecycle", "constant"),
}


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """A new tree: ``base`` with ``override`` merged in recursively (override wins on leaves)."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Leaves of a nested dict keyed by dotted path."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def parse_assignment(text: str) -> tuple[str, Any]:
    """``"train.epochs=5"`` -> ``("train.epochs", 5)``; values are parsed as YAML scalars or lists."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise UsageError(f"malformed --set {text!r}: expected KEY=VALUE with a dotted key, e.g. train.epochs=5")
    if not raw.strip():
        return key, ""
    try:
        return key, load_yaml(raw, f"the value of --set {key}")
    except UsageError as exc:
        raise UsageError(f"malformed --set {text[:80]!r}: {exc}") from None


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A YAML (or JSON) config file as a nested dict (read within :mod:`ferbench.safeyaml`'s limits)."""
    loaded = read_yaml_file(path, "config file")
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise UsageError(f"config file {str(path)!r} must hold a mapping of sections (model, train, ...)")
    return loaded


def _as_float(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


#: Integers must fit 64 bits (the store's BIGINT columns, numpy, torch).
_INT_LIMIT = 2**63


def _element_default(default: list[Any]) -> Any:
    """A representative default for the elements of list ``default`` (None when they are mixed)."""
    kinds = {bool if isinstance(v, bool) else int if isinstance(v, int) else type(v) for v in default}
    if kinds == {int, float}:
        return 0.0
    return default[0] if len(kinds) == 1 and kinds <= {bool, int, float, str} else None


def _typed(path: str, value: Any, default: Any) -> Any:
    """``value`` with the type of ``default`` (ints widened to floats, numeric strings such as YAML 1.1's
    ``5e-4`` read as floats); a UsageError when it cannot have it."""
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise UsageError(f"invalid value {value!r} for {path}: expected true or false")
        return value
    if isinstance(default, float) and isinstance(value, str):
        value = _as_float(value)  # YAML 1.1 reads 5e-4 (no dot) as a string
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, (int, float)) and (isinstance(value, bool) or not isinstance(value, type(default))):
        raise UsageError(f"invalid value {value!r} for {path}: expected {'an integer' if isinstance(default, int) else 'a number'}")
    if isinstance(default, str) and not isinstance(value, str):
        raise UsageError(f"invalid value {value!r} for {path}: expected a string")
    if isinstance(default, list):
        if not isinstance(value, list):
            raise UsageError(f"invalid value {value!r} for {path}: expected a list like {default!r}")
        element = _element_default(default) if default else None
        if element is not None:
            try:
                return [_typed(path, item, element) for item in value]
            except UsageError:
                kind = {bool: "true/false values", int: "integers", float: "numbers", str: "strings"}[type(element)]
                raise UsageError(f"invalid value {value!r} for {path}: expected a list of {kind} "
                                 f"like {default!r}") from None
    return value


def _check_number(path: str, value: Any) -> None:
    """Refuse non-finite floats and integers beyond 64 bits, also inside lists."""
    for item in value if isinstance(value, list) else (value,):
        if isinstance(item, float) and not math.isfinite(item):
            raise UsageError(f"invalid value {item!r} for {path}: expected a finite number")
        if isinstance(item, int) and not isinstance(item, bool) and not -_INT_LIMIT <= item < _INT_LIMIT:
            raise UsageError(f"invalid value {item} for {path}: the integer does not fit in 64 bits")


def _check_value(path: str, value: Any, default: Any, choices: Mapping[str, tuple[Any, ...]]) -> Any:
    if path in choices and value not in choices[path]:
        valid = [str(choice) for choice in choices[path]]
        hint = did_you_mean(value, valid) if isinstance(value, str) else ""
        raise UsageError(f"invalid value {value!r} for {path}{hint}; choose one of: {', '.join(valid)}")
    value = _typed(path, value, default)
    _check_number(path, value)
    return value


def set_path(tree: dict[str, Any], path: str, value: Any, valid: Mapping[str, Any],
             choices: Mapping[str, tuple[Any, ...]]) -> None:
    """Set dotted ``path`` in ``tree``; refuse keys not in ``valid`` and values of the wrong type."""
    if path not in valid:
        if any(key.startswith(path + ".") for key in valid):
            raise UsageError(f"{path} is a section, not a setting; set one of its keys, e.g. "
                             f"{next(k for k in valid if k.startswith(path + '.'))}")
        section, sections = path.split(".")[0], sorted({key.split(".")[0] for key in valid})
        if section not in sections:
            raise UsageError(f"unknown config section {section!r} in {path!r}{did_you_mean(section, sections)}; "
                             f"sections: {', '.join(sections)}")
        near = sorted(k for k in valid if k.split(".")[0] == section)
        raise UsageError(f"unknown config key {path!r}{did_you_mean(path, near)}; valid keys: {', '.join(near)}")
    node = tree
    *parents, leaf = path.split(".")
    for part in parents:
        node = node[part]
    node[leaf] = _check_value(path, value, valid[path], choices)


def method_tree(defaults: Mapping[str, Any], preset: Mapping[str, Any],
                dataset_overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A method's default tree: engine defaults < ``optim`` defaults < the method's defaults < the preset
    < the preset's overrides for the chosen dataset."""
    tree = deep_merge(ENGINE_DEFAULTS, {"optim": OPTIM_DEFAULTS})
    for layer in (defaults, preset, dataset_overrides or {}):
        tree = deep_merge(tree, layer)
    return tree


#: Preset sections whose keys are only known when a run is planned: ``loss`` holds the selected loss's
#: options, ``dataset`` the chosen dataset's.
PLANNED_SECTIONS = ("loss", "dataset")


def check_presets(method: str, defaults: Mapping[str, Any], presets: Mapping[str, Mapping[str, Any]],
                  dataset_presets: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None) -> None:
    """Refuse a preset key that ``method`` does not define, in one line naming the method, the preset and
    the key, with the nearest known key.

    A method's keys are the engine's (:data:`ENGINE_DEFAULTS`, :data:`OPTIM_DEFAULTS`), its
    ``defaults``' and those that every preset sets: a key only some presets set would be missing under
    the others (the method fails reading it, or ignores it), so it is a typo or belongs in ``defaults``.
    A default that is an empty mapping takes any keys. ``loss`` and ``dataset`` keys are checked when a
    run is planned, against the selected loss and dataset.
    """
    declared = flatten(method_tree(defaults, {}))
    per_preset = {name: flatten(tree) for name, tree in presets.items()}
    everywhere = set.intersection(*(set(keys) for keys in per_preset.values())) if per_preset else set()
    valid = set(declared) | everywhere
    free_form = tuple(f"{key}." for key, value in declared.items() if value == {})
    layers = {f"preset {name!r}": keys for name, keys in per_preset.items()}
    for preset, by_dataset in (dataset_presets or {}).items():
        if preset not in presets:
            raise UsageError(f"method {method!r}: dataset_presets names preset {preset!r}, which the method does not "
                             f"have{did_you_mean(preset, presets)}; its presets: {', '.join(presets)}")
        layers.update({f"preset {preset!r} for dataset {dataset!r}": flatten(tree)
                       for dataset, tree in by_dataset.items()})
    known = valid.union(*per_preset.values())
    for where, keys in layers.items():
        for key in keys:
            if key in valid or key.split(".")[0] in PLANNED_SECTIONS or key.startswith(free_form):
                continue
            raise UsageError(f"method {method!r}, {where}: {_unknown_preset_key(key, valid, known - {key})}")


def _unknown_preset_key(key: str, valid: set[str], known: set[str]) -> str:
    section = key.split(".")[0]
    sections = {k.split(".")[0] for k in known} | set(PLANNED_SECTIONS)
    if section not in sections:
        return (f"unknown section {section!r} (in {key}){did_you_mean(section, sections)}; "
                f"sections: {', '.join(sorted(sections))}")
    return (f"unknown key {key}{did_you_mean(key, known)}; a method's keys are the engine's, its defaults' "
            f"and those all its presets set")


#: Name of the config key that selects a registered loss.
LOSS_NAME = "loss.name"


def _chosen_loss(tree: Mapping[str, Any], file_overrides: Mapping[str, Any],
                 assignments: Iterable[tuple[str, Any]]) -> str | None:
    """The loss the user ends up with: the preset's, unless the config file or ``--set`` names another."""
    name = tree.get("loss", {}).get("name")
    name = flatten(file_overrides).get(LOSS_NAME, name)
    for path, value in assignments:
        if path == LOSS_NAME:
            name = value
    return name


def _loss_paths(by_option: Mapping[str, Any]) -> dict[str, Any]:
    """A loss's per-option table (choices, constraints) keyed by config path ``loss.<option>``."""
    return {f"loss.{option}": value for option, value in by_option.items()}


def resolve_loss_section(tree: dict[str, Any], name: str, losses: Mapping[str, Any]) -> dict[str, tuple[Any, ...]]:
    """Make ``tree['loss']`` the options of loss ``name`` (its defaults, with the preset's values when the
    preset chose that loss); returns the loss's choices as config-path choices."""
    if not isinstance(name, str) or name not in losses:
        raise UsageError(f"invalid value {name!r} for {LOSS_NAME}{did_you_mean(str(name), losses)}; "
                         f"choose one of: {', '.join(sorted(losses))}")
    spec = losses[name]
    preset_options = {k: v for k, v in tree.get("loss", {}).items() if k != "name"}
    options = dict(spec.options)
    if tree.get("loss", {}).get("name") == name:
        for key, value in preset_options.items():
            if key not in options:
                raise UsageError(f"the preset sets loss.{key}, which loss {name!r} does not have"
                                 f"{did_you_mean(key, options)}; its options: {', '.join(sorted(options)) or 'none'}")
            options[key] = value
    tree["loss"] = {"name": name, **options}
    return {LOSS_NAME: tuple(sorted(losses)), **_loss_paths(spec.choices)}


def _check_preset_dataset_keys(base: Mapping[str, Any], dataset_options: Mapping[str, Any]) -> None:
    for key in base.get("dataset", {}):
        if key not in dataset_options:
            raise UsageError(f"the method's preset sets dataset.{key}, which this dataset does not have"
                             f"{did_you_mean(key, dataset_options)}; "
                             f"its options: {', '.join(sorted(dataset_options)) or 'none'}")


def build_config(base: Mapping[str, Any], dataset_options: Mapping[str, Any],
                 file_overrides: Mapping[str, Any] | None = None,
                 assignments: Iterable[tuple[str, Any]] = (),
                 choices: Mapping[str, tuple[Any, ...]] | None = None,
                 losses: Mapping[str, Any] | None = None,
                 constraints: Mapping[str, Constraint] | None = None) -> dict[str, Any]:
    """The effective config: dataset option defaults < ``base`` (see :func:`method_tree`) < config file < ``--set``.

    When the tree has a ``loss`` section with a ``name`` and ``losses`` (name -> LossSpec) are given, the
    section becomes the chosen loss's options, so ``--set loss.name=X`` brings X's own keys. Every value
    is then checked against :data:`ENGINE_CONSTRAINTS`, :data:`OPTIM_CONSTRAINTS`, the loss's
    ``constraints`` and ``constraints`` (the method's, which replace the engine's for the same key, e.g.
    a method that reads ``optim.lr`` 0 as "derive it").
    """
    _check_preset_dataset_keys(base, dataset_options)
    tree = deep_merge(ENGINE_DEFAULTS, base)
    tree["dataset"] = deep_merge(dataset_options, tree.get("dataset", {}))
    file_overrides = file_overrides or {}
    assignments = list(assignments)
    all_choices = {**ENGINE_CHOICES, **(choices or {})}
    rules = {**ENGINE_CONSTRAINTS, **OPTIM_CONSTRAINTS}
    loss_name = _chosen_loss(tree, file_overrides, assignments)
    if losses is not None and loss_name is not None:
        all_choices.update(resolve_loss_section(tree, loss_name, losses))
        rules.update(_loss_paths(losses[loss_name].constraints))
    valid = flatten(tree)
    for path, value in flatten(file_overrides).items():
        set_path(tree, path, value, valid, all_choices)
    for path, value in assignments:
        set_path(tree, path, value, valid, all_choices)
    flat = flatten(tree)
    for path, value in flat.items():
        _check_value(path, value, valid.get(path), all_choices)
    check_constraints(flat, {**rules, **(constraints or {})})
    return tree


def config_hash(config: Mapping[str, Any]) -> str:
    """A stable short hash of a config (key order does not matter)."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
