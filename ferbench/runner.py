"""Execution of a planned run: method x dataset protocol x config x seed, fold by fold, recorded in the store.

A run is identified by a key over everything that determines its score (weights references and their
hashes included); starting the same run again after an interruption resumes it (finished folds are
kept, the fold in progress restarts from its last epoch checkpoint), so each fold ends with exactly one
recorded result. Planning (what the user asked for -> a validated plan) lives in :mod:`ferbench.planning`.
Under torchrun every rank executes the run and rank 0 alone records it (:mod:`ferbench.distributed`).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import secrets
import time
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np

from . import foldstats, provenance
from .config import config_hash
from .contracts import load_dataset, load_pixels, metric_value, scalar_metrics
from .cost import CostMeter
from .data import FERData
from .diskio import remove_temporaries, stale_temporaries, write_atomically
from .distributed import current_world, local_device, require_shardable, session
from .errors import FerbenchError, RunBusyError, StorageError, UsageError
from .locks import FileLock, RunLock
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
    from .trainer import Checkpoint, FoldResult

#: How many held-out images a method's image grids show.
PREVIEW_IMAGES = 8


@dataclass
class FoldData:
    """The arrays and rows a fold trains and is scored on."""

    data: FERData
    arrays: dict[str, np.ndarray]
    fold: Fold
    index: int


@dataclass(frozen=True)
class FoldPlan:
    """What a run's fold loop works through: the loaded data, all of the run's folds and the part to execute."""

    data: FERData
    arrays: dict[str, np.ndarray]
    manifest: Manifest
    folds: tuple[int, ...]
    todo: tuple[int, ...]


class Runner:
    """Executes a planned run fold by fold and records everything in the store."""

    def __init__(self, plan: Plan, request: RunRequest, store: Store, echo: Callable[[str], None]) -> None:
        self.plan, self.request, self.store, self.echo = plan, request, store, echo
        self.reg = registry()
        self.classes: tuple[str, ...] = plan.dataset.classes
        self.scored = plan.kind is not RunKind.PRETRAIN
        self.world = current_world()
        self.meter: CostMeter | None = None

    # --- the run ----------------------------------------------------------------------------------
    def execute(self) -> dict[str, Any]:
        """Train (or only score) every requested fold; returns the run summary. One process at a time
        executes a run key (or one part of it): another one is refused, or waits with ``--wait``."""
        # first: a data or cache problem surfaces before torch loads; rank 0 fills the caches the others read
        data, arrays, manifest = self.world.main_first(self._load)
        from .trainer import select_device, use_deterministic

        use_deterministic(self.request.deterministic)  # before torch computes anything and versions are recorded
        device = local_device(select_device(self.request.device), self.world)
        self.meter = CostMeter(device)
        folds = (self.request.fold,) if self.request.fold is not None else tuple(range(len(manifest.folds)))
        todo = self._part(folds)
        flags = self._pretraining_overlap(data, manifest, todo)
        run_key = self._run_key(manifest, folds)
        lock = self._run_lock(run_key, todo, folds)
        asked = datetime.now()
        waited = self.world.share(lambda: lock is not None and self._take(lock))  # rank 0 holds the lock
        try:
            finished = self.world.share(lambda: self._completed_since(run_key, asked)) if waited else None
            if finished is not None:
                self.echo(f"run {finished} was completed by the process this one waited for; not run again")
                info = self._run_info(finished, manifest, folds, str(device), resumed=False)
                return self._summary(info, manifest, self._completed_folds(info.run_id), resumed=False)
            with self._opening(run_key):
                info, resumed = self.world.share(lambda: self._open_run(run_key, manifest, folds, str(device), flags))
            if lock is not None:
                lock.describe(run_id=info.run_id)
            return self._execute_folds(info, FoldPlan(data, arrays, manifest, folds, todo), device, resumed)
        finally:
            if lock is not None:
                lock.release()

    def _run_lock(self, run_key: str, todo: tuple[int, ...], folds: tuple[int, ...]) -> RunLock | None:
        """Rank 0's lock on the run key, or on its part when a per-fold job executes only ``todo``."""
        if not self.world.is_main:
            return None
        name = run_key if todo == folds else f"{run_key}-part-{'-'.join(map(str, todo))}"
        return RunLock(self.store.artifacts_dir, name)

    def _take(self, lock: RunLock) -> bool:
        """Take the run key's lock; when another process holds it, refuse, or wait with ``--wait``.
        Returns whether this process waited. Nothing here reads the database: a holder frozen inside a
        write cannot block the refusal."""
        if lock.acquire(blocking=False):
            return False
        holder = lock.holder()
        run = f" (run {holder['run_id']})" if holder.get("run_id") else ""
        if not self.request.wait:
            raise RunBusyError(f"the same run is already being executed by {lock.holder_text()}{run}; let it finish "
                               "(its results will be in the database), or start this command with --wait")
        self.echo(f"waiting for {lock.holder_text()}{run}, which executes the same run")
        lock.acquire()
        return True

    def _execute_folds(self, info: RunInfo, plan: FoldPlan, device: torch.device, resumed: bool) -> dict[str, Any]:
        todo, folds = plan.todo, plan.folds
        self.echo(f"{self.plan.kind} run {info.run_id}{' (resumed)' if resumed else ''}: {self.plan.method.name} "
                  f"[{self.plan.preset}] on {self.plan.dataset.name}/{self.plan.protocol}, seed {self.request.seed}, "
                  f"{len(todo)} fold(s){f' of {len(folds)}' if todo != folds else ''}, {device}")
        self._hook("on_run_start", run=info)
        try:
            self._remove_temporaries(info, whole=todo == folds)
            per_fold = self.world.share(lambda: self._completed_folds(info.run_id))
            for index in todo:
                if index in per_fold:
                    self.echo(f"fold {index}: already recorded, skipped")
                    if self.world.is_main:
                        self._checkpoint(info, index).remove()  # left when a kill came right after recording
                    continue
                fold = FoldData(plan.data, plan.arrays, plan.manifest.folds[index], index)
                per_fold[index] = self._run_fold(info, fold, device)
                self._hook("on_fold_end", run=info, fold=index, metrics=per_fold[index])
            self.meter.peak_bytes = int(self.world.max(self.meter.peak_memory_bytes()))  # the largest rank's
            summary = self.world.share(lambda: self._summary(info, plan.manifest, per_fold, resumed))
            self._complete(info, summary, len(folds), whole=todo == folds)
        except KeyboardInterrupt:
            self._end_quietly(info, Status.INTERRUPTED)
            raise
        except StorageError as exc:
            recorded = self._end_quietly(info, Status.FAILED, error=str(exc))
            raise StorageError(f"{exc}; run {info.run_id} keeps what it recorded and resumes when the same command "
                               f"is started again{'' if recorded else ' (its status could not be updated)'}") from None
        except BaseException as exc:
            self._end_quietly(info, Status.FAILED, error=repr(exc)[:2000])
            raise
        return summary

    def _remove_temporaries(self, info: RunInfo, whole: bool) -> None:
        """Delete the temporary files a killed process of this run left; while other parts of the run may
        be writing (per-fold jobs), only those whose process is gone."""
        if not self.world.is_main:
            return
        if whole:
            remove_temporaries(self.store.artifacts_dir / info.run_id)
            return
        for path in stale_temporaries(self.store.artifacts_dir / info.run_id):
            path.unlink(missing_ok=True)

    def _complete(self, info: RunInfo, summary: dict[str, Any], folds: int, whole: bool) -> None:
        """Mark the run completed; after a part of it, only when every one of its ``folds`` is recorded
        (whichever part records the last fold completes it)."""
        if whole:
            self._end(info, Status.COMPLETED, summary)
        elif self.world.is_main:
            self._end(info, Status.PARTIAL, summary)
            summary["status"] = str(self.store.complete_if_recorded(info.run_id, folds))

    def _part(self, folds: tuple[int, ...]) -> tuple[int, ...]:
        """The folds this process executes: all of the run's, or the part a per-fold job was given."""
        part = self.request.part_folds
        if part is None:
            return folds
        if self.request.fold is not None or not set(part) <= set(folds):
            raise UsageError(f"folds {list(part)} are not a part of this run's folds {list(folds)}")
        return tuple(part)

    @contextlib.contextmanager
    def _opening(self, run_key: str) -> Iterator[None]:
        """Per-fold jobs of one run start together: one at a time finds (or records) the run's row."""
        if self.request.part_folds is None or not self.world.is_main:
            yield
            return
        with FileLock(self.store.artifacts_dir / "locks" / f"{run_key}.opening", "run opening lock"):
            yield

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
    def _checkpoint(self, info: RunInfo, index: int) -> Checkpoint:
        from .trainer import Checkpoint

        return Checkpoint(self.store.artifacts_dir / info.run_id / f"fold-{index}.pt",
                          warn=lambda message: self.echo(f"warning: {message}"))

    def _run_fold(self, info: RunInfo, part: FoldData, device: torch.device) -> dict[str, float]:
        from .trainer import Trainer, seed_everything

        loaders, data_info = self._fold_inputs(part, device)
        seed_everything(self.request.seed, 1, part.index)
        method: Method = load_object(self.plan.method.factory)(self.plan.config, data_info)
        checkpoint = self._checkpoint(info, part.index)
        if self.plan.kind is RunKind.EVAL:
            result = self._evaluate_only(method, part, loaders, device)
        else:
            def epoch_end(epoch: int, metrics: dict[str, float]) -> None:
                self._hook("on_epoch_end", run=info, fold=part.index, epoch=epoch, metrics=metrics)

            trainer = Trainer(method, loaders, data_info, self.plan.config, device, self.request.seed, checkpoint,
                              self._score if self.scored else None, epoch_end, progress=self.request.progress,
                              description=f"fold {part.index}")
            result = trainer.fit()
        if not self.world.is_main:
            return {}  # rank 0 records the fold
        self.store.update_run(info.run_id, parameters=method.evaluated_parameters())
        metrics = self._record_fold(info, part, result)
        checkpoint.remove()  # only once the fold is recorded: a kill before this resumes from it
        return metrics

    def _fold_inputs(self, part: FoldData, device: torch.device) -> tuple[Any, DataInfo]:
        from .loader import ArrayBatches, Normalizer
        from .method import DataInfo
        from .trainer import FoldLoaders

        config, data, fold = self.plan.config, part.data, part.fold
        train_cfg = config["train"]
        stats = foldstats.normalization(config["data"], part.arrays, fold.train)
        normalizer = Normalizer(stats, device)
        weights = foldstats.balanced_weights(data, fold.train) if train_cfg["balanced_sampling"] else None
        require_shardable(len(fold.train), self.world)

        def batches(rows: np.ndarray, train: bool = False) -> ArrayBatches:
            return ArrayBatches(part.arrays, data.labels, rows, train_cfg["batch_size" if train else "eval_batch_size"],
                                device, normalizer, train=train, augment_cfg=config["data"]["augment"],
                                seed=self.request.seed * 1000 + part.index, views=self.plan.views,
                                sample_weights=weights if train else None,
                                soft_labels=data.soft_labels if train else None, world=self.world)

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
        """Keep the fold's weights and images, store its predictions, and score them from the database.
        Probabilities that are not all finite (a diverged model) are refused: nothing of the fold is kept."""
        folder = self.store.artifacts_dir / info.run_id
        test_ids = part.data.ids[part.fold.test].tolist()
        if result.probabilities is not None:
            require_finite(result.probabilities, f"fold {part.index} of run {info.run_id}")
        kept = self._keep_weights(folder, part.index, result) if self.plan.kind is not RunKind.EVAL else {}
        self.store.save_fold(info.run_id, part.index, {
            "selected_epoch": result.selected_epoch, "selection": result.selection, "n_train": len(part.fold.train),
            "n_val": len(part.fold.val), "n_test": len(part.fold.test), "train_seconds": result.train_seconds,
            "eval_seconds": result.eval_seconds, "images_per_second": result.images_per_second, **kept,
        }, test_ids, part.data.labels[part.fold.test], result.probabilities, result.curves,
            artifacts=self._keep_outputs(folder, part.index, result, test_ids))
        if not self.scored:
            self.store.save_pretrain_images(info.run_id, self.plan.dataset.name,
                                            part.data.ids[np.concatenate([part.fold.train, part.fold.val])].tolist())
            self.echo(f"fold {part.index}: pre-trained {result.selected_epoch + 1} epochs "
                      f"({result.images_per_second:.0f} img/s); weights kept")
            return {}
        metrics = self._score_stored_fold(info.run_id, part.index)
        shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        how = (f"epoch {result.selected_epoch + 1} by {result.selection['rule']}, {result.images_per_second:.0f} img/s"
               if self.plan.kind is RunKind.TRAIN else "evaluation only")
        self.echo(f"fold {part.index}: {shown} ({how})")
        return metrics

    def _score_stored_fold(self, run_id: str, fold: int) -> dict[str, float]:
        """Compute and store the fold's scalar metrics from its predictions as stored."""
        _, labels, _, probabilities = self.store.predictions(run_id, fold)
        metrics = self._scalar_metrics(labels, probabilities)
        self.store.save_fold_metrics(run_id, fold, metrics)
        return metrics

    def _keep_weights(self, folder: Path, index: int, result: FoldResult) -> dict[str, str]:
        """Save the selected weights as safetensors; the path is recorded relative to the artifacts folder."""
        if not self.plan.config["train"]["keep_weights"]:
            return {}
        from .weights import save_state_dict

        path = folder / f"fold-{index}.safetensors"
        sha256 = save_state_dict(result.weights, path)
        return {"weights_path": str(path.relative_to(self.store.artifacts_dir)), "weights_sha256": sha256}

    def _keep_outputs(self, folder: Path, index: int, result: FoldResult,
                      test_ids: list[str]) -> list[tuple[str, str, Path]]:
        """Write the fold's image grids (PNG) and per-sample outputs (npz); ``(kind, name, path)`` of each."""
        from PIL import Image

        written = []
        for name, grid in result.images.items():
            path = folder / f"fold-{index}-{name}.png"
            write_atomically(path, lambda file, grid=grid: Image.fromarray(grid).save(file, format="PNG"), "image")
            written.append(("image", name, path))
        if result.outputs:
            path = folder / f"fold-{index}-outputs.npz"
            write_atomically(path, lambda file: np.savez_compressed(file, sample_id=np.asarray(test_ids),
                                                                    **result.outputs), "sample outputs")
            written.append(("outputs", "sample_outputs", path))
        return written

    def _scalar_metrics(self, labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
        return scalar_metrics(labels, probabilities, len(self.classes), self.reg)

    # --- bookkeeping ------------------------------------------------------------------------------
    def _run_key(self, manifest: Manifest, folds: tuple[int, ...]) -> str:
        weights = sorted((path, w.ref, w.sha256) for path, w in self.plan.weights.items())
        parts = [self.plan.method.name, self.plan.dataset.name, self.plan.protocol, manifest.hash,
                 config_hash(self.plan.config), str(self.request.seed), json.dumps(folds), str(self.plan.kind),
                 json.dumps(weights)]
        if self.request.deterministic:  # bit-for-bit runs never resume or join runs made without the flag
            parts.append("deterministic")
        if self.world.distributed:  # a run on N processes trains with N times the batch: another run
            parts.append(f"processes={self.world.size}")
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]

    def _open_run(self, run_key: str, manifest: Manifest, folds: tuple[int, ...], device: str,
                  flags: dict[str, Any]) -> tuple[RunInfo, bool]:
        """Reuse the unfinished run with the same key, or record a new one."""
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
        return self._run_info(run_id, manifest, folds, device, resumed), resumed

    def _run_info(self, run_id: str, manifest: Manifest, folds: tuple[int, ...], device: str,
                  resumed: bool) -> RunInfo:
        plan = self.plan
        return RunInfo(run_id=run_id, method=plan.method.name, dataset=plan.dataset.name, protocol=plan.protocol,
                       preset=plan.preset, seed=self.request.seed, config=plan.config,
                       config_hash=config_hash(plan.config), manifest_hash=manifest.hash, folds=folds,
                       device=device, resumed=resumed, kind=str(plan.kind))

    def _completed_since(self, run_key: str, since: datetime) -> str | None:
        """The run with this key that another process completed since ``since`` (while this one waited)."""
        if not self.store.path.exists():
            return None
        rows = self.store.query("SELECT run_id FROM runs WHERE run_key = ? AND status = ? AND ended_at >= ? "
                                "ORDER BY ended_at DESC LIMIT 1", [run_key, Status.COMPLETED, since])
        return rows[0]["run_id"] if rows else None

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
            "world_size": self.world.size, "accelerator": self.meter.accelerator if self.meter else None,
        })

    def _completed_folds(self, run_id: str) -> dict[int, dict[str, float]]:
        """Metrics of the run's recorded folds. A fold recorded without them (a kill between storing its
        predictions and its metrics) is scored again from its stored predictions."""
        done: dict[int, dict[str, float]] = {row["fold"]: {} for row in self.store.query(
            "SELECT fold FROM folds WHERE run_id = ? AND status = ?", [run_id, Status.COMPLETED])}
        for row in self.store.query("SELECT fold, metric, value FROM fold_metrics WHERE run_id = ?", [run_id]):
            if row["fold"] in done:
                done[row["fold"]][row["metric"]] = row["value"]
        for fold, metrics in done.items():
            if self.scored and not metrics:
                done[fold] = self._score_stored_fold(run_id, fold)
                self.echo(f"fold {fold}: metrics computed again from its stored predictions")
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
        if not self.world.is_main:
            return
        fields: dict[str, Any] = {"status": status, "ended_at": datetime.now()}
        if error is not None:
            fields["error"] = error
        if self.meter is not None:
            fields.update(self.meter.run_fields(self.store, info.run_id))
        self.store.update_run(info.run_id, **fields)
        self._hook("on_run_end", run=info, status=str(status), summary=summary or {})

    def _hook(self, name: str, **kwargs: Any) -> None:
        """Call a lifecycle hook (on rank 0 only in a distributed run: plugins see each event once)."""
        if self.world.is_main:
            call_hook(name, **kwargs)

    def _end_quietly(self, info: RunInfo, status: Status, error: str | None = None) -> bool:
        """:meth:`_end` on the way out of a failure, which must not hide it: whether the status was recorded
        (a full disk may refuse that too; the run then still reads ``running``)."""
        try:
            self._end(info, status, error=error)
        except FerbenchError:
            return False
        return True


def require_finite(probabilities: np.ndarray, where: str) -> None:
    """Refuse class probabilities that are NaN or infinite (a model that diverged) before they are scored."""
    bad = int((~np.isfinite(probabilities)).any(axis=1).sum())
    if bad:
        raise FerbenchError(f"{where}: the class probabilities of {bad} of {len(probabilities)} test samples are not "
                            "finite (training diverged), so the fold is not recorded and the run is marked failed; "
                            "lower optim.lr, check data.mean/data.std, or set train.grad_clip")


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
    with session(request.device) as world:
        if not world.is_main:  # rank 0 speaks for the run
            echo, request = _silent, replace(request, progress=False)
        summary = Runner(plan, request, store, echo).execute()
    summary["seconds"] = round(time.perf_counter() - started, 1)
    return summary


def _silent(message: str) -> None:
    """The echo of ranks other than 0."""
