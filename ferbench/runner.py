"""Execution of a planned run: method x dataset protocol x config x seed, fold by fold, recorded in the store.

A run is identified by a key over everything that determines its score (weights references and their
hashes included); starting the same run again after an interruption resumes it (finished folds are
kept, the fold in progress restarts from its last epoch checkpoint), so each fold ends with exactly one
recorded result. Planning (what the user asked for -> a validated plan) lives in :mod:`ferbench.planning`.
"""
from __future__ import annotations

import hashlib
import json
import math
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from . import foldstats, provenance
from .config import config_hash
from .contracts import load_dataset, load_pixels, metric_value, scalar_metrics
from .data import FERData
from .errors import UsageError
from .metrics import aggregate
from .planning import EVAL_WEIGHTS, Plan, RunRequest, plan_eval, plan_run
from .plugins import call_hook, registry
from .protocols import Fold, Manifest, build_manifest
from .runinfo import RunInfo
from .settings import RunKind, Selection, Status
from .specs import load_object
from .store import Store

if TYPE_CHECKING:
    import torch

    from .method import DataInfo, Method
    from .trainer import FoldResult

#: How many held-out images a method's image grids show.
PREVIEW_IMAGES = 8


@dataclass
class FoldData:
    """The arrays and rows a fold trains and is scored on."""

    data: FERData
    arrays: dict[str, np.ndarray]
    fold: Fold
    index: int


class Runner:
    """Executes a planned run fold by fold and records everything in the store."""

    def __init__(self, plan: Plan, request: RunRequest, store: Store, echo: Callable[[str], None]) -> None:
        self.plan, self.request, self.store, self.echo = plan, request, store, echo
        self.reg = registry()
        self.classes: tuple[str, ...] = plan.dataset.classes
        self.scored = plan.kind is not RunKind.PRETRAIN

    # --- the run ----------------------------------------------------------------------------------
    def execute(self) -> dict[str, Any]:
        """Train (or only score) every requested fold; returns the run summary."""
        from .trainer import select_device

        device = select_device(self.request.device)
        data, arrays, manifest = self._load()
        folds = (self.request.fold,) if self.request.fold is not None else tuple(range(len(manifest.folds)))
        flags = self._pretraining_overlap(data, manifest, folds)
        info, resumed = self._open_run(manifest, folds, str(device), flags)
        self.echo(f"{self.plan.kind} run {info.run_id}{' (resumed)' if resumed else ''}: {self.plan.method.name} "
                  f"[{self.plan.preset}] on {self.plan.dataset.name}/{self.plan.protocol}, seed {self.request.seed}, "
                  f"{len(folds)} fold(s), {device}")
        call_hook("on_run_start", run=info)
        try:
            per_fold = self._completed_folds(info.run_id)
            for index in folds:
                if index in per_fold:
                    self.echo(f"fold {index}: already recorded, skipped")
                    continue
                per_fold[index] = self._run_fold(info, FoldData(data, arrays, manifest.folds[index], index), device)
                call_hook("on_fold_end", run=info, fold=index, metrics=per_fold[index])
        except KeyboardInterrupt:
            self._end(info, Status.INTERRUPTED)
            raise
        except BaseException as exc:
            self._end(info, Status.FAILED, error=repr(exc)[:2000])
            raise
        summary = self._summary(info, manifest, per_fold, resumed)
        self._end(info, Status.COMPLETED, summary)
        return summary

    def _load(self) -> tuple[FERData, dict[str, np.ndarray], Manifest]:
        plan, config = self.plan, self.plan.config
        data = load_dataset(plan.dataset, plan.data_root, config["dataset"])
        self.classes = tuple(data.classes)  # may differ from the spec's default, e.g. a 6-class option
        pixels = load_pixels(plan.dataset, data, config["data"]["image_size"])
        if len(pixels.unreadable):
            self.echo(f"{len(pixels.unreadable)} unreadable image(s) left out of every split")
        wants_val = self.scored and config["train"]["selection"] == Selection.VAL
        manifest = build_manifest(data, plan.dataset.name, plan.dataset.protocols[plan.protocol],
                                  config["train"]["val_fraction"] if wants_val else 0.0)
        if wants_val and any(len(f.val) == 0 for f in manifest.folds):
            raise UsageError("train.selection=val needs a validation part: set train.val_fraction > 0")
        arrays = {name: array for name, array in pixels.arrays.items() if name in plan.method.modalities}
        return data, arrays, manifest

    def _pretraining_overlap(self, data: FERData, manifest: Manifest, folds: tuple[int, ...]) -> dict[str, Any]:
        """Refuse (or, when allowed, flag) a fine-tune whose test images a pre-training run learned from."""
        from .weights import source_run

        resolved = [*self.plan.weights.values(), *(w for f in self.plan.fold_weights.values() for w in f.values())]
        sources = sorted({run_id for w in resolved if (run_id := source_run(w.ref))})
        if not sources or not self.store.path.exists():
            return {}
        rows = self.store.query(
            f"SELECT run_id, sample_id FROM pretrain_images WHERE dataset = ? AND run_id IN "
            f"({', '.join('?' * len(sources))})", [self.plan.dataset.name, *sources])
        seen = {row["sample_id"] for row in rows}
        overlap = {k: int(np.isin(data.ids[manifest.folds[k].test], list(seen)).sum()) for k in folds} if seen else {}
        overlap = {k: n for k, n in overlap.items() if n}
        if not overlap:
            return {}
        where = ", ".join(f"fold {k}: {n}" for k, n in overlap.items())
        if not self.request.allow_test_images_in_pretraining:
            raise UsageError(f"the pre-training run(s) {', '.join(sources)} learned from test images of this "
                             f"protocol ({where}); pre-train on the same fold's training part, or pass "
                             "--allow-test-images-in-pretraining (the run is then marked on the leaderboard)")
        self.echo(f"warning: pre-training saw test images ({where}); the run is marked")
        return {"test_images_in_pretraining": overlap}

    # --- one fold ---------------------------------------------------------------------------------
    def _run_fold(self, info: RunInfo, part: FoldData, device: torch.device) -> dict[str, float]:
        from .trainer import Checkpoint, Trainer, seed_everything

        loaders, data_info = self._fold_inputs(part, device)
        seed_everything(self.request.seed, 1, part.index)
        method: Method = load_object(self.plan.method.factory)(self.plan.config, data_info)
        if self.plan.kind is RunKind.EVAL:
            result = self._evaluate_only(method, part, loaders, device)
        else:
            checkpoint = Checkpoint(self.store.artifacts_dir / info.run_id / f"fold-{part.index}.pt",
                                    warn=lambda message: self.echo(f"warning: {message}"))

            def epoch_end(epoch: int, metrics: dict[str, float]) -> None:
                call_hook("on_epoch_end", run=info, fold=part.index, epoch=epoch, metrics=metrics)

            trainer = Trainer(method, loaders, data_info, self.plan.config, device, self.request.seed, checkpoint,
                              self._score if self.scored else None, epoch_end, progress=self.request.progress,
                              description=f"fold {part.index}")
            result = trainer.fit()
            checkpoint.remove()
        self.store.update_run(info.run_id, parameters=method.evaluated_parameters())
        return self._record_fold(info, part, result)

    def _fold_inputs(self, part: FoldData, device: torch.device) -> tuple[Any, DataInfo]:
        from .loader import ArrayBatches, Normalizer
        from .method import DataInfo
        from .trainer import FoldLoaders

        config, data, fold = self.plan.config, part.data, part.fold
        train_cfg = config["train"]
        stats = foldstats.normalization(config["data"], part.arrays, fold.train)
        normalizer = Normalizer(stats, device)
        weights = foldstats.balanced_weights(data, fold.train) if train_cfg["balanced_sampling"] else None

        def batches(rows: np.ndarray, train: bool = False) -> ArrayBatches:
            return ArrayBatches(part.arrays, data.labels, rows, train_cfg["batch_size" if train else "eval_batch_size"],
                                device, normalizer, train=train, augment_cfg=config["data"]["augment"],
                                seed=self.request.seed * 1000 + part.index, views=self.plan.views,
                                sample_weights=weights if train else None,
                                soft_labels=data.soft_labels if train else None)

        has_val = len(fold.val) > 0
        loaders = FoldLoaders(train=batches(fold.train, train=True), val=batches(fold.val) if has_val else None,
                              test=batches(fold.test), test_labels=data.labels[fold.test],
                              val_labels=data.labels[fold.val] if has_val else None,
                              preview=batches(fold.test[:PREVIEW_IMAGES]) if len(fold.test) else None)
        data_info = DataInfo(classes=self.plan.model_classes or tuple(data.classes), modalities=tuple(part.arrays),
                             image_size=config["data"]["image_size"],
                             class_counts=foldstats.class_counts(data, fold.train),
                             steps_per_epoch=math.ceil(len(loaders.train) / train_cfg["grad_accum_steps"]),
                             epochs=train_cfg["epochs"], normalization=stats,
                             weights=self.plan.weights_for_fold(part.index),
                             prior=foldstats.label_prior(data, fold.train))
        return loaders, data_info

    def _score(self, labels: np.ndarray, probabilities: np.ndarray) -> float:
        return metric_value(self.plan.config["train"]["selection_metric"], labels, probabilities, len(self.classes),
                            self.reg)

    def _evaluate_only(self, method: Method, part: FoldData, loaders: Any, device: torch.device) -> FoldResult:
        """Score given weights without training (``ferbench eval``)."""
        from .trainer import FoldResult, cpu_weights, predict_probabilities
        from .weights import read_state_dict

        resolved = self.plan.weights_for_fold(part.index)[EVAL_WEIGHTS]
        method.import_state_dict(read_state_dict(resolved.path))
        method.to(device)
        started = time.perf_counter()
        outputs: dict[str, list[Any]] = {}
        probabilities = predict_probabilities(method, loaders.test, None, outputs)
        if self.plan.model_classes is not None:
            probabilities = map_classes(probabilities, self.plan.model_classes, tuple(part.data.classes))
        return FoldResult(probabilities=probabilities, selected_epoch=-1,
                          selection={"rule": "none", "weights": resolved.ref}, curves=[], train_seconds=0.0,
                          eval_seconds=time.perf_counter() - started, images_per_second=0.0,
                          weights=cpu_weights(method.export_state_dict()),
                          outputs={name: np.concatenate([p.numpy() for p in parts]) for name, parts in outputs.items()})

    def _record_fold(self, info: RunInfo, part: FoldData, result: FoldResult) -> dict[str, float]:
        """Keep the fold's weights and images, store its predictions, and score them from the database."""
        folder = self.store.artifacts_dir / info.run_id
        test_ids = part.data.ids[part.fold.test].tolist()
        kept = self._keep_weights(folder, part.index, result) if self.plan.kind is not RunKind.EVAL else {}
        self.store.save_fold(info.run_id, part.index, {
            "selected_epoch": result.selected_epoch, "selection": result.selection, "n_train": len(part.fold.train),
            "n_val": len(part.fold.val), "n_test": len(part.fold.test), "train_seconds": result.train_seconds,
            "eval_seconds": result.eval_seconds, "images_per_second": result.images_per_second, **kept,
        }, test_ids, part.data.labels[part.fold.test], result.probabilities, result.curves)
        self._keep_outputs(folder, info.run_id, part.index, result, test_ids)
        if not self.scored:
            self.store.save_pretrain_images(info.run_id, self.plan.dataset.name,
                                            part.data.ids[np.concatenate([part.fold.train, part.fold.val])].tolist())
            self.echo(f"fold {part.index}: pre-trained {result.selected_epoch + 1} epochs "
                      f"({result.images_per_second:.0f} img/s); weights kept")
            return {}
        _, labels, _, probabilities = self.store.predictions(info.run_id, part.index)
        metrics = self._scalar_metrics(labels, probabilities)
        self.store.save_fold_metrics(info.run_id, part.index, metrics)
        shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        how = (f"epoch {result.selected_epoch + 1} by {result.selection['rule']}, {result.images_per_second:.0f} img/s"
               if self.plan.kind is RunKind.TRAIN else "evaluation only")
        self.echo(f"fold {part.index}: {shown} ({how})")
        return metrics

    def _keep_weights(self, folder: Path, index: int, result: FoldResult) -> dict[str, str]:
        """Save the selected weights as safetensors; the path is recorded relative to the artifacts folder."""
        if not self.plan.config["train"]["keep_weights"]:
            return {}
        from .weights import save_state_dict

        path = folder / f"fold-{index}.safetensors"
        sha256 = save_state_dict(result.weights, path)
        return {"weights_path": str(path.relative_to(self.store.artifacts_dir)), "weights_sha256": sha256}

    def _keep_outputs(self, folder: Path, run_id: str, index: int, result: FoldResult, test_ids: list[str]) -> None:
        from PIL import Image

        folder.mkdir(parents=True, exist_ok=True)
        for name, grid in result.images.items():
            path = folder / f"fold-{index}-{name}.png"
            Image.fromarray(grid).save(path)
            self.store.save_artifact(run_id, index, "image", name, path)
        if result.outputs:
            path = folder / f"fold-{index}-outputs.npz"
            np.savez_compressed(path, sample_id=np.asarray(test_ids), **result.outputs)
            self.store.save_artifact(run_id, index, "outputs", "sample_outputs", path)

    def _scalar_metrics(self, labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
        return scalar_metrics(labels, probabilities, len(self.classes), self.reg)

    # --- bookkeeping ------------------------------------------------------------------------------
    def _run_key(self, manifest: Manifest, folds: tuple[int, ...]) -> str:
        weights = sorted((path, w.ref, w.sha256) for path, w in self.plan.weights.items())
        parts = [self.plan.method.name, self.plan.dataset.name, self.plan.protocol, manifest.hash,
                 config_hash(self.plan.config), str(self.request.seed), json.dumps(folds), str(self.plan.kind),
                 json.dumps(weights)]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]

    def _open_run(self, manifest: Manifest, folds: tuple[int, ...], device: str,
                  flags: dict[str, Any]) -> tuple[RunInfo, bool]:
        """Reuse the unfinished run with the same key, or record a new one."""
        run_key = self._run_key(manifest, folds)
        run_id, resumed = None, False
        if not self.request.fresh and self.store.path.exists():
            rows = self.store.query("SELECT run_id FROM runs WHERE run_key = ? AND status <> ? "
                                    "ORDER BY started_at DESC LIMIT 1", [run_key, Status.COMPLETED])
            if rows:
                run_id, resumed = rows[0]["run_id"], True
                self.store.update_run(run_id, status=Status.RUNNING, error=None, device=device)
        if run_id is None:
            run_id = f"{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
            self._insert_run(run_id, run_key, manifest, folds, device, flags)
        plan = self.plan
        info = RunInfo(run_id=run_id, method=plan.method.name, dataset=plan.dataset.name, protocol=plan.protocol,
                       preset=plan.preset, seed=self.request.seed, config=plan.config,
                       config_hash=config_hash(plan.config), manifest_hash=manifest.hash, folds=folds,
                       device=device, resumed=resumed, kind=str(plan.kind))
        return info, resumed

    def _insert_run(self, run_id: str, run_key: str, manifest: Manifest, folds: tuple[int, ...], device: str,
                    flags: dict[str, Any]) -> None:
        plan, selection = self.plan, self.plan.config["train"]["selection"]
        if not self.scored:
            selection = "none"
        elif plan.kind is RunKind.EVAL:
            selection = "given weights"
        self.store.save_manifest(manifest.hash, manifest.dataset, manifest.protocol, manifest.to_json())
        self.store.insert_run({
            "run_id": run_id, "run_key": run_key, "method": plan.method.name, "dataset": plan.dataset.name,
            "protocol": plan.protocol, "preset": plan.preset, "seed": self.request.seed, "config": plan.config,
            "config_hash": config_hash(plan.config), "manifest_hash": manifest.hash, "classes": list(self.classes),
            "folds": list(folds), "selection_rule": selection, "selected_on_test": selection == Selection.TEST,
            "val_rule": manifest.val_rule, "device": device, "versions": provenance.versions(),
            "git_commit": provenance.git_commit(), "host": provenance.host(), "command": provenance.command_line(),
            "status": Status.RUNNING, "started_at": datetime.now(), "kind": str(plan.kind),
            "weights": {path: w.to_json() for path, w in plan.weights.items()}, "flags": flags,
        })

    def _completed_folds(self, run_id: str) -> dict[int, dict[str, float]]:
        done: dict[int, dict[str, float]] = {row["fold"]: {} for row in self.store.query(
            "SELECT fold FROM folds WHERE run_id = ? AND status = ?", [run_id, Status.COMPLETED])}
        for row in self.store.query("SELECT fold, metric, value FROM fold_metrics WHERE run_id = ?", [run_id]):
            if row["fold"] in done:
                done[row["fold"]][row["metric"]] = row["value"]
        return done

    def _summary(self, info: RunInfo, manifest: Manifest, per_fold: dict[int, dict[str, float]],
                 resumed: bool) -> dict[str, Any]:
        seconds = self.store.query("SELECT coalesce(sum(train_seconds), 0) AS t FROM folds WHERE run_id = ?",
                                   [info.run_id])[0]["t"]
        return {"run_id": info.run_id, "kind": str(self.plan.kind), "method": info.method, "dataset": info.dataset,
                "protocol": info.protocol, "preset": info.preset, "seed": info.seed, "device": info.device,
                "config_hash": info.config_hash, "manifest_hash": manifest.hash,
                "selection": self.plan.config["train"]["selection"], "resumed": resumed,
                "train_seconds": round(float(seconds), 1),
                "weights": {path: w.to_json() for path, w in self.plan.weights.items()},
                "folds": {str(k): per_fold[k] for k in sorted(per_fold)}, "aggregate": aggregate(per_fold),
                "db": str(self.store.path)}

    def _end(self, info: RunInfo, status: Status, summary: dict[str, Any] | None = None,
             error: str | None = None) -> None:
        fields: dict[str, Any] = {"status": status, "ended_at": datetime.now()}
        if error is not None:
            fields["error"] = error
        self.store.update_run(info.run_id, **fields)
        call_hook("on_run_end", run=info, status=str(status), summary=summary or {})


def map_classes(probabilities: np.ndarray, model_classes: tuple[str, ...], classes: tuple[str, ...]) -> np.ndarray:
    """Probabilities over ``model_classes`` mapped onto ``classes`` by name and renormalised (a model
    trained with contempt scored on a 7-class dataset drops that column); a dataset class the model
    never learned is an error."""
    if model_classes == classes:
        return probabilities
    missing = [c for c in classes if c not in model_classes]
    if missing:
        raise UsageError(f"the weights predict {', '.join(model_classes)}; they cannot score class(es) "
                         f"{', '.join(missing)} of this dataset")
    mapped = probabilities[:, [model_classes.index(c) for c in classes]]
    return mapped / np.maximum(mapped.sum(axis=1, keepdims=True), 1e-12)


def run(request: RunRequest, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Plan, then execute a run; the entry point used by the CLI and by tests."""
    plan = plan_eval(request) if request.kind is RunKind.EVAL else plan_run(request)
    store = Store(request.db)
    started = time.perf_counter()
    summary = Runner(plan, request, store, echo).execute()
    summary["seconds"] = round(time.perf_counter() - started, 1)
    return summary
