"""Run configuration: preset + config file + ``--set`` overrides, validated against the preset's tree.

A configuration is a nested dictionary with four sections: ``model``, ``loss`` and ``optim`` belong to
the method; ``train`` and ``data`` are read by the engine (defaults in :data:`ENGINE_DEFAULTS`);
``dataset`` holds the dataset plugin's options. Keys not present in the default tree are refused, and
each value must have the type of its default, so typos never pass silently.
"""
from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from .errors import UsageError
from .settings import Selection

#: Engine settings every method inherits; a preset overrides what it needs.
ENGINE_DEFAULTS: dict[str, Any] = {
    "train": {
        "epochs": 10,
        "batch_size": 64,
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
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        raise UsageError(f"malformed --set {text!r}: the value is not valid YAML") from None
    return key, value


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A YAML (or JSON) config file as a nested dict."""
    path = Path(path)
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read config file {str(path)!r}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise UsageError(f"config file {str(path)!r} is not valid YAML{where}") from None
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


def _check_value(path: str, value: Any, default: Any, choices: Mapping[str, tuple[Any, ...]]) -> Any:
    if path in choices and value not in choices[path]:
        valid = ", ".join(map(str, choices[path]))
        raise UsageError(f"invalid value {value!r} for {path}; choose one of: {valid}")
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
    if isinstance(default, list) and not isinstance(value, list):
        raise UsageError(f"invalid value {value!r} for {path}: expected a list like {default!r}")
    return value


def set_path(tree: dict[str, Any], path: str, value: Any, valid: Mapping[str, Any],
             choices: Mapping[str, tuple[Any, ...]]) -> None:
    """Set dotted ``path`` in ``tree``; refuse keys not in ``valid`` and values of the wrong type."""
    if path not in valid:
        if any(key.startswith(path + ".") for key in valid):
            raise UsageError(f"{path} is a section, not a setting; set one of its keys, e.g. "
                             f"{next(k for k in valid if k.startswith(path + '.'))}")
        section = path.split(".")[0]
        near = sorted(k for k in valid if k.split(".")[0] == section) or sorted(valid)
        raise UsageError(f"unknown config key {path!r}; valid keys: {', '.join(near)}")
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


def resolve_loss_section(tree: dict[str, Any], name: str, losses: Mapping[str, Any]) -> dict[str, tuple[Any, ...]]:
    """Make ``tree['loss']`` the options of loss ``name`` (its defaults, with the preset's values when the
    preset chose that loss); returns the loss's choices as config-path choices."""
    if name not in losses:
        raise UsageError(f"invalid value {name!r} for {LOSS_NAME}; choose one of: {', '.join(sorted(losses))}")
    spec = losses[name]
    preset_options = {k: v for k, v in tree.get("loss", {}).items() if k != "name"}
    options = dict(spec.options)
    if tree.get("loss", {}).get("name") == name:
        for key, value in preset_options.items():
            if key not in options:
                raise UsageError(f"the preset sets loss.{key}, which loss {name!r} does not have; its options: "
                                 f"{', '.join(sorted(options)) or 'none'}")
            options[key] = value
    tree["loss"] = {"name": name, **options}
    return {LOSS_NAME: tuple(sorted(losses)), **{f"loss.{k}": v for k, v in spec.choices.items()}}


def build_config(base: Mapping[str, Any], dataset_options: Mapping[str, Any],
                 file_overrides: Mapping[str, Any] | None = None,
                 assignments: Iterable[tuple[str, Any]] = (),
                 choices: Mapping[str, tuple[Any, ...]] | None = None,
                 losses: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The effective config: dataset option defaults < ``base`` (see :func:`method_tree`) < config file < ``--set``.

    When the tree has a ``loss`` section with a ``name`` and ``losses`` (name -> LossSpec) are given, the
    section becomes the chosen loss's options, so ``--set loss.name=X`` brings X's own keys.
    """
    tree = deep_merge(ENGINE_DEFAULTS, base)
    tree["dataset"] = deep_merge(dataset_options, tree.get("dataset", {}))
    file_overrides = file_overrides or {}
    assignments = list(assignments)
    all_choices = {**ENGINE_CHOICES, **(choices or {})}
    loss_name = _chosen_loss(tree, file_overrides, assignments)
    if losses is not None and loss_name is not None:
        all_choices.update(resolve_loss_section(tree, loss_name, losses))
    valid = flatten(tree)
    for path, value in flatten(file_overrides).items():
        set_path(tree, path, value, valid, all_choices)
    for path, value in assignments:
        set_path(tree, path, value, valid, all_choices)
    for path, value in flatten(tree).items():
        _check_value(path, value, valid.get(path), all_choices)
    return tree


def config_hash(config: Mapping[str, Any]) -> str:
    """A stable short hash of a config (key order does not matter)."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
