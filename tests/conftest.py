"""Shared fixtures: an isolated ferbench home per test and helpers to run the real CLI."""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ferbench import metrics

#: pytest-xdist's workers share the cores: each worker, and each ferbench process a test starts, uses its
#: share of them (set before anything imports torch), so parallel tests do not oversubscribe the CPU.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, len(os.sched_getaffinity(0)) // _WORKERS)))

#: Settings that make vit-baseline/synthfer runs take a few seconds on a CPU.
FAST = ["--preset", "tiny", "--set", "dataset.samples=420", "--set", "dataset.subjects=20",
        "--set", "data.image_size=32", "--set", "model.depth=2", "--set", "train.epochs=2"]
#: vit-baseline settings for end-to-end runs on the tiny fixtures of real datasets (16 px, 2 epochs).
TINY_RUN = ["--preset", "tiny", "--set", "data.image_size=16", "--set", "model.patch_size=8",
            "--set", "model.depth=2", "--set", "train.epochs=2"]


def step_context(slots: dict[str, Any], accum: int = 1, clip: float = 0.0) -> Any:
    """A CPU :class:`ferbench.method.StepContext` without mixed precision, as the engine builds it."""
    import torch

    from ferbench.method import StepContext

    return StepContext(slots=slots, scaler=torch.amp.GradScaler("cpu", enabled=False), device=torch.device("cpu"),
                       amp_dtype=None, grad_clip=clip, accum_steps=accum)


@pytest.fixture
def fb_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment for a ferbench process with its own home and database under ``tmp_path``."""
    home = tmp_path / "home"
    monkeypatch.setenv("FERBENCH_HOME", str(home))
    monkeypatch.setenv("FERBENCH_DB", str(home / "results.duckdb"))
    monkeypatch.delenv("FERBENCH_DATA_ROOT", raising=False)
    return dict(os.environ)


#: The test-only third-party plugin (a pre-trainer, a classifier, a loss), see tests/toyplugin/.
TOY_PLUGIN_DIR = Path(__file__).parent / "toyplugin"


def with_toy_plugin(env: dict[str, str]) -> dict[str, str]:
    """``env`` with the toy plugin loaded (``FERBENCH_PLUGINS``)."""
    path = os.pathsep.join(filter(None, [str(TOY_PLUGIN_DIR), env.get("PYTHONPATH", "")]))
    return {**env, "PYTHONPATH": path, "FERBENCH_PLUGINS": "toy_plugin"}


@pytest.fixture
def toy_env(fb_env: dict[str, str]) -> dict[str, str]:
    """``fb_env`` with the toy plugin loaded (``FERBENCH_PLUGINS``)."""
    return with_toy_plugin(fb_env)


def wait_for(path_glob: str, root: Path, timeout: float = 240) -> Path:
    """The first file under ``root`` matching ``path_glob``, once one appears."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted(root.glob(path_glob))
        if found:
            return found[0]
        time.sleep(0.02)
    raise AssertionError(f"{path_glob} never appeared under {root}")


def run_id_of(result: subprocess.CompletedProcess[str]) -> str:
    """The run id a ``ferbench run/pretrain/eval --json`` printed."""
    return json.loads(result.stdout)["run_id"]


def ferbench(*args: str, env: dict[str, str] | None = None, check: bool = True,
             timeout: float = 3600) -> subprocess.CompletedProcess[str]:
    """Run ``python -m ferbench ARGS`` in a subprocess, as a user would."""
    result = subprocess.run([sys.executable, "-m", "ferbench", *args], capture_output=True, text=True,
                            env=env, timeout=timeout, stdin=subprocess.DEVNULL)
    if check and result.returncode != 0:
        raise AssertionError(f"ferbench {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


def ferbench_json(*args: str, env: dict[str, str] | None = None) -> Any:
    """Run ferbench with ``--json`` and decode its standard output."""
    return json.loads(ferbench(*args, "--json", env=env).stdout)


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """A user mistake: exit code 2, one ``ferbench: error:`` line holding ``fragments``, no traceback."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("ferbench: error:"), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert all(fragment in lines[0] for fragment in fragments), lines[0]
    return lines[0]


# --- building methods and losses by hand (no loader, no engine) -------------------------------------------

def planned_config(method: str, preset: str = "tiny", dataset: str = "synthfer", **assignments: Any) -> dict[str, Any]:
    """The effective config of ``method``/``preset`` on ``dataset`` with ``--set KEY=VALUE`` assignments
    (dotted keys given with ``__`` for ``.``), validated exactly as ``ferbench run`` validates it; weights
    references are left unresolved (nothing downloads)."""
    from ferbench.planning import RunRequest, plan_run
    from ferbench.plugins import registry
    from ferbench.settings import RunKind
    from ferbench.specs import PRETRAINER

    pairs = [(key.replace("__", "."), value) for key, value in assignments.items()]
    kind = RunKind.PRETRAIN if registry().method(method).kind == PRETRAINER else RunKind.TRAIN
    request = RunRequest(method=method, dataset=dataset, preset=preset, assignments=pairs, kind=kind)
    return plan_run(request, resolve_weights=False).config


def data_info(classes: int | tuple[str, ...] | None = None, image_size: int = 32, **fields: Any) -> Any:
    """A ``DataInfo`` for building a method or loss directly in a unit test: ``classes`` is a class count
    (the first canonical emotions) or names (default: the seven basic expressions), one RGB modality,
    ten training samples per class; ``fields`` override any other field (``prior``, ``weights``...)."""
    import numpy as np

    from ferbench.emotions import BASIC8
    from ferbench.method import DataInfo

    names = BASIC8[:classes] if isinstance(classes, int) else tuple(classes or BASIC8[:7])
    defaults = dict(classes=names, modalities=("rgb",), image_size=image_size, class_counts=np.full(len(names), 10),
                    steps_per_epoch=4, epochs=2)
    return DataInfo(**{**defaults, **fields})


def random_batch(batch_size: int, image_size: int, num_classes: int, views: int = 1, seed: int = 0) -> Any:
    """A Batch of ``views`` random normalised RGB views with every class present."""
    import torch

    from ferbench.method import Batch

    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(batch_size) % num_classes
    images = [{"rgb": torch.randn(batch_size, 3, image_size, image_size, generator=generator)} for _ in range(views)]
    return Batch(views=images, labels=labels, rows=torch.arange(batch_size))


def one_training_step(method: Any, batch: Any) -> dict[str, Any]:
    """Configure the method's optimizers and run one training step on CPU without mixed precision."""
    import torch

    from ferbench.method import StepContext

    slots = method.configure_optimizers()
    ctx = StepContext(slots=slots, scaler=torch.amp.GradScaler("cpu", enabled=False), device=torch.device("cpu"),
                      amp_dtype=None)
    method.train()
    return method.training_step(batch, ctx)


def method_config(method: str, preset: str = "tiny", overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """A method's effective config for ``preset`` with ``--set``-style overrides keyed by dotted path."""
    return planned_config(method, preset, **{key.replace(".", "__"): value for key, value in (overrides or {}).items()})


def weights_file(state: dict[str, Any], path: Path) -> Any:
    """``state`` saved as safetensors at ``path`` and resolved as the runner resolves a weights reference."""
    from ferbench.weights import resolve, save_state_dict

    save_state_dict(state, path)
    return resolve(str(path))


# --- an example results database and generated leaderboard pages --------------------------------------------------------------------------

#: The only script elements a leaderboard page may hold: its own script file and inert JSON data.
OWN_SCRIPT = re.compile(r'<script src="(?:\.\./)?ferbench\.js"></script>|<script type="application/json" id="[a-z-]+">')


def foreign_scripts(html: str) -> list[str]:
    """``<script`` openings in ``html`` other than the leaderboard's own (there must be none)."""
    own = {match.start() for match in OWN_SCRIPT.finditer(html)}
    return [html[m.start():m.start() + 80] for m in re.finditer(r"<script", html, re.IGNORECASE) if m.start() not in own]


CLASSES = ["happy", "sad", "angry"]
DATASET, PROTOCOL = "toyfer", "kfold2"
# Test labels of the two folds, and each (method, seed)'s predictions on them.
LABELS = {0: [0, 0, 0, 0, 1, 1, 1, 2, 2, 2], 1: [0, 0, 0, 1, 1, 1, 1, 2, 2, 2]}
PREDICTIONS = {
    ("alpha_net", 0): {0: [0, 0, 0, 1, 1, 1, 1, 2, 2, 0], 1: [0, 0, 0, 1, 1, 1, 2, 2, 2, 2]},
    ("alpha_net", 1): {0: [0, 0, 0, 0, 1, 1, 2, 2, 2, 2], 1: [0, 0, 1, 1, 1, 1, 1, 2, 2, 1]},
    ("beta_net", 0): {0: [0, 1, 0, 1, 1, 0, 1, 2, 0, 2], 1: [0, 1, 0, 1, 2, 1, 1, 2, 0, 2]},
    ("beta_net", 1): {0: [0, 0, 1, 1, 1, 2, 1, 2, 1, 2], 1: [2, 0, 0, 1, 1, 0, 1, 2, 2, 0]},
}
SELECTION = {"alpha_net": "val", "beta_net": "test"}
EPOCHS = 6


def insert_run(store: Any, run_id: str, method: str, seed: int, status: str, selection: str,
                dataset: str = DATASET, protocol: str = PROTOCOL, classes: list[str] = CLASSES,
                config_extra: dict | None = None, error: str | None = None, manifest: str | None = None) -> None:
    extra = f"-{hashlib.sha1(json.dumps(config_extra, sort_keys=True).encode()).hexdigest()[:6]}" if config_extra else ""
    store.insert_run({
        "run_id": run_id, "run_key": f"key-{run_id}", "method": method, "dataset": dataset, "protocol": protocol,
        "preset": "paper", "seed": seed,
        "config": {"train": {"epochs": EPOCHS, "selection": selection, "lr": 0.001}, **(config_extra or {})},
        "config_hash": f"cfg-{method}-{selection}{extra}", "manifest_hash": manifest or f"man-{dataset}",
        "classes": classes,
        "folds": [0, 1], "selection_rule": selection, "selected_on_test": selection == "test",
        "val_rule": "stratified 10% of train" if selection == "val" else "none", "device": "cpu",
        "versions": {"ferbench": "0.1.0", "torch": "2.3.0"}, "git_commit": "abc1234", "host": "testhost",
        "command": f"ferbench run {method} {dataset} --seed {seed}", "status": status, "error": error,
        "started_at": _start(seed), "ended_at": None,
    })


def _start(seed: int) -> datetime:
    return datetime(2024, 5, 1, 12, 0) + timedelta(minutes=seed)


def save_fold(store: Any, run_id: str, fold: int, labels: list[int], predictions: list[int],
               n_classes: int, selection: str) -> None:
    probabilities = np.full((len(labels), n_classes), 0.1 / max(n_classes - 1, 1), dtype=np.float32)
    probabilities[np.arange(len(labels)), predictions] = 0.9
    curves = [(epoch, name, value) for epoch in range(EPOCHS) for name, value in (
        ("train_loss", 1.5 / (epoch + 1) + 0.05 * fold), ("lr", 0.001 * (1 - epoch / EPOCHS)),
        (f"{selection}_mean_class_accuracy", 0.5 + 0.05 * epoch - 0.02 * fold))]
    selected = EPOCHS - 1 if selection == "final" else EPOCHS - 2
    store.save_fold(run_id, fold, {
        "selected_epoch": selected, "selection": {"rule": selection, "epoch": selected}, "n_train": 40,
        "n_val": 4 if selection == "val" else 0, "n_test": len(labels), "train_seconds": 12.5,
        "eval_seconds": 0.4, "images_per_second": 320.0,
    }, [f"s{fold}-{i:02d}" for i in range(len(labels))], np.array(labels), probabilities, curves)
    y, p = np.array(labels), np.array(predictions)
    store.save_fold_metrics(run_id, fold, {
        name: float(getattr(metrics, name)(y, p, probabilities, n_classes))
        for name in ("accuracy", "mean_class_accuracy", "macro_f1")})


def build_example(db: Path) -> Any:
    """A small results database of hand-checkable runs (tests/test_leaderboard.py checks its pages): 2 methods x 2 seeds x 2 folds of completed runs, plus a failed and a running run."""
    from ferbench.store import Store

    store = Store(db)
    store.save_manifest(f"man-{DATASET}", DATASET, PROTOCOL, {"folds": [{"test": []}, {"test": []}]})
    for (method, seed), per_fold in PREDICTIONS.items():
        run_id = f"{method}-s{seed}"
        insert_run(store, run_id, method, seed, "running", SELECTION[method])
        for fold, predictions in per_fold.items():
            save_fold(store, run_id, fold, LABELS[fold], predictions, len(CLASSES), SELECTION[method])
        store.update_run(run_id, status="completed", ended_at=_start(seed) + timedelta(minutes=3))
    insert_run(store, "beta_net-s2", "beta_net", 2, "running", "test")
    save_fold(store, "beta_net-s2", 0, LABELS[0], LABELS[0], len(CLASSES), "test")
    store.update_run("beta_net-s2", status="failed", error="RuntimeError('CUDA out of memory')")
    insert_run(store, "alpha_net-s3", "alpha_net", 3, "running", "val")
    return store


