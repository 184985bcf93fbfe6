"""Helpers for plugin authors' tests, and what ``ferbench plugins check NAME`` runs.

Everything works offline, on a CPU, in seconds:

- :func:`tiny_data` builds a small, learnable :class:`~ferbench.data.FERData` in memory (to test a
  method's or a protocol's code without files);
- :func:`check_dataset` loads a registered dataset and its pixels through the very checks a run makes
  (sample table, pixel dtype/size/channels/rows, every protocol's folds) and summarises it;
- :func:`check_metric` scores a registered metric on random predictions and checks its value;
- :func:`mock_run` trains a registered method for a few steps on a small ``synthfer`` in-process, through
  the real planner, engine and store, in a throwaway database (a *mock run*);
- :func:`check_plugin` runs the checks above on everything a plugin provides.

A plugin under test must be installed (``pip install -e .``) or named in ``FERBENCH_PLUGINS`` before
ferbench first loads its plugins in the process.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from .contracts import blamed_on, load_dataset, load_pixels, metric_value
from .data import FERData
from .emotions import BASIC7
from .errors import FerbenchError, PluginError, UsageError
from .plugins import KINDS, registry
from .specs import PRETRAINER

#: synthfer settings of a mock run: about 100 faces of 10 subjects (the official split tests 2 of them).
MOCK_SYNTHFER = {"dataset.samples": 96, "dataset.subjects": 10}


def tiny_data(classes: Sequence[str] = BASIC7[:3], per_class: int = 8, subjects: int = 4,
              modalities: Sequence[str] = ("rgb",), seed: int = 0) -> FERData:
    """A small labelled dataset in memory: ``per_class`` images of each class, ``subjects`` subjects (the
    last one is the official ``test`` split), each class a brightness level plus noise (learnable)."""
    n = per_class * len(classes)
    labels = np.repeat(np.arange(len(classes)), per_class)
    subject = np.arange(n) % subjects
    level = (labels + 1) * (200 // (len(classes) + 1))

    def load_pixels(size: int) -> dict[str, np.ndarray]:
        noise = np.random.default_rng(seed).integers(0, 40, (n, size, size, 1))
        gray = np.clip(level[:, None, None, None] + noise, 0, 255).astype(np.uint8)
        arrays = {"rgb": np.repeat(gray, 3, axis=3)}
        if "depth" in modalities:
            arrays["depth"] = gray
        return {name: arrays[name] for name in modalities}

    return FERData(classes=tuple(classes), ids=[f"sample-{i:04d}" for i in range(n)], labels=labels,
                   load_pixels=load_pixels, modalities=tuple(modalities), subjects=subject.astype(str),
                   split=np.where(subject == subjects - 1, "test", "train"))


def check_dataset(name: str, data_root: str | Path | None = None, options: Mapping[str, Any] | None = None,
                  image_size: int = 32) -> dict[str, Any]:
    """Load dataset ``name`` (and its pixels at ``image_size``) through the checks a run makes, build
    every protocol's folds, and summarise it. A broken contract raises a one-line PluginError."""
    from .planning import dataset_options, resolve_data_root
    from .protocols import build_manifest

    spec = registry().dataset(name)
    chosen = dataset_options(spec, [(f"dataset.{key}", value) for key, value in (options or {}).items()])
    data = load_dataset(spec, resolve_data_root(spec, str(data_root) if data_root else None), chosen)
    with blamed_on("dataset", name):
        missing = [m for m in spec.modalities if m not in data.modalities]
        if missing:
            raise PluginError(f"the DatasetSpec declares modalities {list(spec.modalities)} but the loaded "
                              f"FERData has {list(data.modalities)}")
        pixels = load_pixels(spec, data, image_size)
        folds = {protocol: len(build_manifest(data, name, protocol_spec).folds)
                 for protocol, protocol_spec in spec.protocols.items()}
    return {"dataset": name, "samples": len(data), "classes": list(data.classes),
            "class_counts": np.bincount(data.labels, minlength=len(data.classes)).tolist(),
            "pixels": {m: list(a.shape) for m, a in pixels.arrays.items()},
            "unreadable": int(len(pixels.unreadable)), "folds": folds}


def check_metric(name: str, num_classes: int = 7, samples: int = 64, seed: int = 0) -> float:
    """Metric ``name`` on random predictions (every class present): its value, checked to be one finite
    number; a failure raises a one-line PluginError naming the metric and its plugin."""
    rng = np.random.default_rng(seed)
    labels = np.arange(samples) % num_classes
    probabilities = rng.dirichlet(np.ones(num_classes), size=samples)
    return metric_value(name, labels, probabilities, num_classes)


@contextlib.contextmanager
def isolated_home(path: str | Path) -> Iterator[Path]:
    """Point ferbench's home (caches) and database at ``path`` inside the block."""
    from .store import DB_ENV, HOME_ENV

    path = Path(path)
    saved = {name: os.environ.get(name) for name in (HOME_ENV, DB_ENV)}
    os.environ[HOME_ENV], os.environ[DB_ENV] = str(path), str(path / "ferbench.duckdb")
    try:
        yield path
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def mock_run(method: str, dataset: str = "synthfer", *, preset: str = "tiny", epochs: int = 1,
             assignments: Sequence[tuple[str, Any]] = (), home: str | Path | None = None,
             data_root: str | None = None) -> dict[str, Any]:
    """Train ``method`` for ``epochs`` short epochs (a few steps) in-process and return the run summary
    (``folds``, ``aggregate``, ``run_id``, the ``log`` lines). On ``synthfer`` it uses about 100 faces and
    the official split; the run goes to a throwaway database under ``home`` (a temporary folder when
    None). Pre-trainers are pre-trained instead. ``assignments`` are ``(key, value)`` overrides."""
    from .planning import RunRequest
    from .runner import run
    from .settings import RunKind

    spec = registry().method(method)
    fixed = [*(MOCK_SYNTHFER.items() if dataset == "synthfer" else ()), ("train.epochs", epochs)]
    kind = RunKind.PRETRAIN if spec.kind == PRETRAINER else RunKind.TRAIN
    log: list[str] = []
    with contextlib.ExitStack() as stack:
        folder = home or stack.enter_context(tempfile.TemporaryDirectory(prefix="ferbench-mock-"))
        stack.enter_context(isolated_home(folder))
        request = RunRequest(method=method, dataset=dataset, preset=preset, kind=kind, progress=False,
                             assignments=[*fixed, *assignments], data_root=data_root, fold=0,
                             protocol="official" if dataset == "synthfer" else None)
        summary = run(request, echo=log.append)
    return {**summary, "log": log}


@dataclass(frozen=True)
class CheckResult:
    """The outcome of checking one thing a plugin provides."""

    kind: str  # dataset, method, metric, loss or plugin
    name: str
    status: str  # ok, failed or skipped
    detail: str

    def line(self) -> str:
        """One line for the terminal."""
        return f"{self.status:<7} {self.kind} {self.name}: {self.detail}"

    def to_json(self) -> dict[str, str]:
        """A JSON-ready form."""
        return asdict(self)


def _targets(name: str) -> list[tuple[str, str]]:
    """(kind, name) of everything plugin ``name`` provides, or the specs called ``name``."""
    reg = registry()
    if name in reg.sources:
        return sorted(key for key, plugin in reg.provider.items() if plugin == name)
    found = [(kind, name) for kind in KINDS if name in reg.table(kind)]
    if not found:
        raise UsageError(f"no plugin, dataset, method, metric or loss called {name!r}; installed plugins: "
                         f"{', '.join(sorted(reg.sources))}")
    return found


def _check_one(kind: str, name: str, data_root: str | None, image_size: int,
               options: Mapping[str, Any]) -> str:
    """What was checked, in a few words; raises FerbenchError when the check fails."""
    if kind == "dataset":
        found = check_dataset(name, data_root, options, image_size)
        shapes = ", ".join(f"{m} {'x'.join(map(str, s[1:]))}" for m, s in found["pixels"].items())
        return (f"{found['samples']} samples, {len(found['classes'])} classes, {shapes}, "
                f"{found['unreadable']} unreadable; protocols {found['folds']}")
    if kind == "metric":
        spec = registry().metrics[name]
        if spec.kind != "scalar":
            spec.function  # noqa: B018 - at least its path must import
            return f"{spec.kind} metric, importable"
        return f"{spec.format_value(check_metric(name))} on random predictions"
    if kind == "method":
        summary = mock_run(name)
        shown = ", ".join(f"{metric} {registry().metric_spec(metric).format_value(stats['mean'])}"
                          for metric, stats in summary["aggregate"].items())
        return f"mock run on synthfer: {shown or 'pre-trained'}"
    return "checked through the methods that select it (--set loss.name=...)"


def check_plugin(name: str, data_root: str | None = None, image_size: int = 32,
                 assignments: Sequence[tuple[str, Any]] = ()) -> list[CheckResult]:
    """Check plugin ``name`` (everything it provides) or the dataset, method, metric or loss called
    ``name``: datasets load with their pixels and folds, methods train in a mock run, metrics return
    finite numbers. A dataset that needs files is skipped without ``data_root``."""
    from .planning import DATA_ROOT_ENV

    reg = registry()
    if name in reg.problems:
        return [CheckResult("plugin", name, "failed", reg.problems[name].line())]
    if any(not key.startswith("dataset.") for key, _ in assignments):
        raise UsageError("only dataset options can be set here, e.g. --set dataset.KEY=VALUE")
    options = {key.split(".", 1)[1]: value for key, value in assignments}
    results = []
    for kind, spec_name in _targets(name):
        spec = reg.table(kind)[spec_name]
        if kind == "dataset" and spec.needs_data_root and not (data_root or os.environ.get(DATA_ROOT_ENV)):
            results.append(CheckResult(kind, spec_name, "skipped", "needs its files: pass --data-root DIR"))
            continue
        try:
            results.append(CheckResult(kind, spec_name, "ok", _check_one(kind, spec_name, data_root, image_size, options)))
        except FerbenchError as exc:
            results.append(CheckResult(kind, spec_name, "failed", str(exc)))
    return results
