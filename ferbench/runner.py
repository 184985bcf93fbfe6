"""Runs: method x dataset protocol x config x seed, over the protocol's folds, recorded in the store.

A run is identified by a key over everything that determines its score; starting the same run again
after an interruption resumes it (finished folds are kept, the fold in progress restarts from its
last epoch checkpoint), so each fold ends with exactly one recorded result.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import __version__
from .config import build_config, config_hash, method_tree, read_config_file
from .data import FERData
from .errors import UsageError
from .metrics import aggregate
from .plugins import Registry, call_hook, registry
from .protocols import Fold, Manifest, build_manifest
from .runinfo import RunInfo
from .specs import DatasetSpec, MethodSpec, load_object
from .store import Store

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


@dataclass
class Plan:
    """A validated request: specs, effective config and data location, before anything heavy loads."""

    method: MethodSpec
    dataset: DatasetSpec
    protocol: str
    preset: str
    config: dict[str, Any]
    data_root: Path | None


def plan_run(request: RunRequest, reg: Registry | None = None) -> Plan:
    """Resolve names and build the effective config; every user mistake raises a one-line UsageError."""
    reg = reg or registry()
    method, dataset = reg.method(request.method), reg.dataset(request.dataset)
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
    file_overrides = read_config_file(request.config_file) if request.config_file else {}
    choices = {**method.choices, **{f"dataset.{k}": v for k, v in dataset.option_choices.items()}}
    base = method_tree(method.defaults, method.presets[preset], method.dataset_presets.get(preset, {}).get(dataset.name))
    config = build_config(base, dataset.options, file_overrides, request.assignments, choices, reg.losses)
    selection_metric = config["train"]["selection_metric"]
    scalar_metrics = sorted(name for name, spec in reg.metrics.items() if spec.kind == "scalar")
    if selection_metric not in scalar_metrics:
        raise UsageError(f"invalid value {selection_metric!r} for train.selection_metric; "
                         f"choose one of: {', '.join(scalar_metrics)}")
    data_root = resolve_data_root(dataset, request.data_root)
    if request.fold is not None and not 0 <= request.fold < dataset.protocols[protocol].num_folds:
        raise UsageError(f"--fold {request.fold} is out of range: protocol {protocol} has folds "
                         f"0..{dataset.protocols[protocol].num_folds - 1}")
    return Plan(method=method, dataset=dataset, protocol=protocol, preset=preset, config=config,
                data_root=data_root)


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
    from .config import flatten, set_path

    options = {"dataset": dict(dataset.options)}
    valid = flatten(options)
    choices = {f"dataset.{k}": v for k, v in dataset.option_choices.items()}
    for path, value in assignments:
        if not path.startswith("dataset."):
            raise UsageError(f"only dataset options can be set here, e.g. dataset.KEY=VALUE (got {path!r})")
        set_path(options, path, value, valid, choices)
    return options["dataset"]


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _versions() -> dict[str, str]:
    import timm
    import torch

    return {"ferbench": __version__, "torch": torch.__version__, "timm": timm.__version__,
            "numpy": np.__version__, "python": platform.python_version()}


def _normalization(config: dict[str, Any], arrays: dict[str, np.ndarray], train_rows: np.ndarray
                   ) -> dict[str, tuple[list[float], list[float]]]:
    """Per-modality mean/std: the config's, or the training part's own when ``data.fold_statistics``."""
    data_cfg = config["data"]
    stats = {"rgb": (data_cfg["mean"], data_cfg["std"]), "depth": (data_cfg["depth_mean"], data_cfg["depth_std"])}
    if data_cfg["fold_statistics"]:
        sample = np.sort(np.random.default_rng(0).permutation(train_rows)[:4096])
        for name, array in arrays.items():
            pixels = array[sample].reshape(-1, array.shape[-1]).astype(np.float64) / 255
            stats[name] = (pixels.mean(0).tolist(), np.maximum(pixels.std(0), 1e-6).tolist())
    return {name: stats[name] for name in arrays}


class Runner:
    """Executes a planned run fold by fold and records everything in the store."""

    def __init__(self, plan: Plan, request: RunRequest, store: Store, echo: Callable[[str], None]) -> None:
        self.plan, self.request, self.store, self.echo = plan, request, store, echo
        self.reg = registry()
        self.classes: tuple[str, ...] = plan.dataset.classes

    def _scalar_metrics(self, labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
        predictions = probabilities.argmax(axis=1)
        n = len(self.classes)
        return {name: float(spec.fn(labels, predictions, probabilities, n))
                for name, spec in sorted(self.reg.metrics.items()) if spec.kind == "scalar"}

    def _run_key(self, manifest: Manifest, folds: tuple[int, ...]) -> str:
        parts = [self.plan.method.name, self.plan.dataset.name, self.plan.protocol, manifest.hash,
                 config_hash(self.plan.config), str(self.request.seed), json.dumps(folds)]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]

    def _open_run(self, manifest: Manifest, folds: tuple[int, ...], device: str) -> tuple[str, bool]:
        """Reuse the unfinished run with the same key, or record a new one."""
        run_key = self._run_key(manifest, folds)
        if not self.request.fresh and self.store.path.exists():
            rows = self.store.query("SELECT run_id FROM runs WHERE run_key = ? AND status <> 'completed' "
                                    "ORDER BY started_at DESC LIMIT 1", [run_key])
            if rows:
                self.store.update_run(rows[0]["run_id"], status="running", error=None, device=device)
                return rows[0]["run_id"], True
        run_id = f"{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
        train_cfg = self.plan.config["train"]
        self.store.save_manifest(manifest.hash, manifest.dataset, manifest.protocol, manifest.to_json())
        self.store.insert_run({
            "run_id": run_id, "run_key": run_key, "method": self.plan.method.name,
            "dataset": self.plan.dataset.name, "protocol": self.plan.protocol, "preset": self.plan.preset,
            "seed": self.request.seed, "config": self.plan.config, "config_hash": config_hash(self.plan.config),
            "manifest_hash": manifest.hash, "classes": list(self.classes), "folds": list(folds),
            "selection_rule": train_cfg["selection"], "selected_on_test": train_cfg["selection"] == "test",
            "val_rule": manifest.val_rule, "device": device, "versions": _versions(), "git_commit": _git_commit(),
            "host": platform.node(), "command": " ".join(sys.argv), "status": "running",
            "started_at": datetime.now(),
        })
        return run_id, False

    def _completed_folds(self, run_id: str) -> dict[int, dict[str, float]]:
        rows = self.store.query("SELECT fold, metric, value FROM fold_metrics WHERE run_id = ? AND fold IN "
                                "(SELECT fold FROM folds WHERE run_id = ? AND status = 'completed')", [run_id, run_id])
        done: dict[int, dict[str, float]] = {}
        for row in rows:
            done.setdefault(row["fold"], {})[row["metric"]] = row["value"]
        return done

    def execute(self) -> dict[str, Any]:
        """Train and score every requested fold; returns the run summary."""
        from .engine import select_device

        plan, config = self.plan, self.plan.config
        device = select_device(self.request.device)
        loader = load_object(plan.dataset.loader)
        data: FERData = loader(plan.data_root, config["dataset"])
        self.classes = tuple(data.classes)  # may differ from the spec's default, e.g. a 6-class option
        pixels = data.pixels(config["data"]["image_size"])
        if len(pixels.unreadable):
            self.echo(f"{len(pixels.unreadable)} unreadable image(s) left out of every split")
        wants_val = config["train"]["selection"] == "val"
        manifest = build_manifest(data, plan.dataset.name, plan.dataset.protocols[plan.protocol],
                                  config["train"]["val_fraction"] if wants_val else 0.0)
        if wants_val and any(len(f.val) == 0 for f in manifest.folds):
            raise UsageError("train.selection=val needs a validation part: set train.val_fraction > 0")
        folds = (self.request.fold,) if self.request.fold is not None else tuple(range(len(manifest.folds)))
        run_id, resumed = self._open_run(manifest, folds, str(device))
        info = RunInfo(run_id=run_id, method=plan.method.name, dataset=plan.dataset.name, protocol=plan.protocol,
                       preset=plan.preset, seed=self.request.seed, config=config, config_hash=config_hash(config),
                       manifest_hash=manifest.hash, folds=folds, device=str(device), resumed=resumed)
        self.echo(f"run {run_id}{' (resumed)' if resumed else ''}: {plan.method.name} [{plan.preset}] on "
                  f"{plan.dataset.name}/{plan.protocol}, seed {self.request.seed}, {len(folds)} fold(s), {device}")
        call_hook("on_run_start", run=info)
        per_fold: dict[int, dict[str, float]] = {}
        try:
            per_fold = self._completed_folds(run_id)
            arrays = {name: array for name, array in pixels.arrays.items() if name in plan.method.modalities}
            for fold in folds:
                if fold in per_fold:
                    self.echo(f"fold {fold}: already recorded, skipped")
                    continue
                per_fold[fold] = self._run_fold(info, data, arrays, manifest.folds[fold], fold, device)
                call_hook("on_fold_end", run=info, fold=fold, metrics=per_fold[fold])
        except KeyboardInterrupt:
            self.store.update_run(run_id, status="interrupted", ended_at=datetime.now())
            call_hook("on_run_end", run=info, status="interrupted", summary={})
            raise
        except BaseException as exc:
            self.store.update_run(run_id, status="failed", error=repr(exc)[:2000], ended_at=datetime.now())
            call_hook("on_run_end", run=info, status="failed", summary={})
            raise
        summary = {"run_id": run_id, "method": plan.method.name, "dataset": plan.dataset.name,
                   "protocol": plan.protocol, "preset": plan.preset, "seed": self.request.seed,
                   "device": str(device), "config_hash": info.config_hash, "manifest_hash": manifest.hash,
                   "selection": config["train"]["selection"], "resumed": resumed,
                   "folds": {str(k): per_fold[k] for k in sorted(per_fold)}, "aggregate": aggregate(per_fold),
                   "db": str(self.store.path)}
        self.store.update_run(run_id, status="completed", ended_at=datetime.now())
        call_hook("on_run_end", run=info, status="completed", summary=summary)
        return summary

    def _run_fold(self, info: RunInfo, data: FERData, arrays: dict[str, np.ndarray], fold: Fold, index: int,
                  device: Any) -> dict[str, float]:
        from .engine import FoldLoaders, seed_everything, train_fold  # torch: imported only when training
        from .loader import ArrayBatches, Normalizer
        from .method import DataInfo

        config, seed = self.plan.config, self.request.seed
        train_cfg = config["train"]
        normalizer = Normalizer(_normalization(config, arrays, fold.train), device)
        weights = None
        counts = np.bincount(data.labels[fold.train], minlength=len(data.classes))
        if train_cfg["balanced_sampling"]:
            weights = 1.0 / np.maximum(counts[data.labels[fold.train]], 1)

        def batches(rows: np.ndarray, train: bool = False) -> ArrayBatches:
            size = train_cfg["batch_size"] if train else train_cfg["eval_batch_size"]
            return ArrayBatches(arrays, data.labels, rows, size, device, normalizer, train=train,
                                augment_cfg=config["data"]["augment"], seed=seed * 1000 + index,
                                sample_weights=weights if train else None,
                                soft_labels=data.soft_labels if train else None)

        loaders = FoldLoaders(train=batches(fold.train, train=True), val=batches(fold.val) if len(fold.val) else None,
                              test=batches(fold.test), test_labels=data.labels[fold.test],
                              val_labels=data.labels[fold.val] if len(fold.val) else None)
        steps = math.ceil(len(loaders.train) / train_cfg["grad_accum_steps"])
        data_info = DataInfo(classes=tuple(data.classes), modalities=tuple(arrays), image_size=config["data"]["image_size"],
                             class_counts=counts, steps_per_epoch=steps, epochs=train_cfg["epochs"])
        seed_everything(seed, 1, index)
        method = load_object(self.plan.method.factory)(config, data_info)
        selection_fn = self.reg.metrics[train_cfg["selection_metric"]].fn

        def score(labels: np.ndarray, probabilities: np.ndarray) -> float:
            return float(selection_fn(labels, probabilities.argmax(1), probabilities, len(data.classes)))

        def epoch_end(epoch: int, metrics: dict[str, float]) -> None:
            call_hook("on_epoch_end", run=info, fold=index, epoch=epoch, metrics=metrics)

        checkpoint = self.store.artifacts_dir / info.run_id / f"fold-{index}.pt"
        result = train_fold(method, loaders, data_info, config, device, seed, checkpoint, score, epoch_end,
                            progress=self.request.progress, description=f"fold {index}")
        test_ids = data.ids[fold.test].tolist()
        self.store.save_fold(info.run_id, index, {
            "selected_epoch": result.selected_epoch, "selection": result.selection, "n_train": len(fold.train),
            "n_val": len(fold.val), "n_test": len(fold.test), "train_seconds": result.train_seconds,
            "eval_seconds": result.eval_seconds, "images_per_second": result.images_per_second,
        }, test_ids, data.labels[fold.test], result.probabilities, result.curves)
        _, labels, _, probabilities = self.store.predictions(info.run_id, index)
        metrics = self._scalar_metrics(labels, probabilities)
        self.store.save_fold_metrics(info.run_id, index, metrics)
        checkpoint.unlink(missing_ok=True)
        shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        self.echo(f"fold {index}: {shown} (epoch {result.selected_epoch + 1} by {result.selection['rule']}, "
                  f"{result.images_per_second:.0f} img/s)")
        return metrics


def run(request: RunRequest, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Plan, then execute a run; the entry point used by the CLI and by tests."""
    plan = plan_run(request)
    store = Store(request.db)
    started = time.perf_counter()
    summary = Runner(plan, request, store, echo).execute()
    summary["seconds"] = round(time.perf_counter() - started, 1)
    return summary
