"""Sweeps: a YAML file expands into runs, planned without loading any data, and their state in the database.

A sweep file::

    name: pfvit-table3            # names the job folder (default: the file's name)
    db: results/pfvit.duckdb      # optional; else --db, $FERBENCH_DB or the default database
    data_root: ~/data/RAF-DB      # optional, for every run
    nproc: 1                      # processes (GPUs) per run
    set: {train.epochs: 100}      # overrides of every run
    grid:                         # every combination; a single value stands for a list of one
      method: vit-baseline
      dataset: rafdb
      protocol: official          # optional: the dataset's default
      preset: [paper, mae-in1k]
      seed: [0, 1, 2]
      set: [{}, {train.selection: val}]   # override variants
    entries:                      # optional: grids of their own; each key given replaces the grid's
      - {method: pfvit, preset: paper, set: [{model.face_net: none}]}
      - {dataset: ferplus, data_root: ~/data/FERPlus}   # data_root and nproc may differ per entry too
    executor: {...}               # how the runs execute (:mod:`ferbench.sweep_jobs`)

Without ``entries`` the sweep is the grid. A run's identity is its request: method, dataset, protocol, the
config hash of its planned config, seed, folds, kind, weights references and process count. The database
is searched by that identity (:func:`run_states`), so a sweep started again skips what completed and
executes, and thereby resumes, what did not; a completed run whose data folder has changed since (another
split manifest) is not noticed here: the run key of an executed run includes the manifest hash.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from .config import config_hash, parse_assignment
from .errors import UsageError, did_you_mean
from .planning import RunRequest, plan_run, weights_keys
from .safeyaml import read_yaml_file
from .settings import RunKind, Status
from .store import Store

GRID_KEYS = ("method", "dataset", "protocol", "preset", "seed", "set")
ENTRY_KEYS = (*GRID_KEYS, "nproc", "data_root")
TOP_KEYS = ("name", "db", "data_root", "nproc", "set", "grid", "entries", "executor")


@dataclass(frozen=True)
class Executor:
    """How a sweep's runs execute (the ``executor`` section).

    ``local``: in this process one after the other (``workers: 1``, one process per run), else through
    submitit's LocalExecutor: ``workers`` jobs, each executing its share of the runs in turn on its share
    of ``devices`` (GPU indices; none: the CPU). ``slurm``: one job per run or per fold (``jobs``) in a job
    array, with ``time_minutes``, ``gpus_per_node`` (default: ``nproc``), ``cpus_per_task``, ``mem_gb`` and
    submitit's ``slurm_*`` parameters from the ``slurm`` mapping (``partition``, ``array_parallelism``,
    ``account``, ``qos``, ``constraint``, ``additional_parameters``, ``setup`` ...). ``cluster: local`` runs
    the same job array on this machine (to try a cluster sweep file); ``folder`` holds submitit's logs.
    ``db_per_run`` gives each run a database of its own (for file systems whose locks do not hold across
    machines; combine them with ``ferbench merge``)."""

    kind: str = "local"
    workers: int = 1
    devices: tuple[int, ...] = ()
    jobs: str = "run"
    cluster: str = "slurm"
    folder: str | None = None
    time_minutes: int = 7 * 24 * 60
    gpus_per_node: int | None = None
    cpus_per_task: int | None = None
    mem_gb: float | None = None
    slurm: Mapping[str, Any] = field(default_factory=dict)
    db_per_run: bool = False


KINDS, JOBS, CLUSTERS = ("local", "slurm"), ("run", "fold"), ("slurm", "local")


@dataclass
class SweepRun:
    """One run of a sweep: what ``ferbench run`` would be asked, and its identity in the database."""

    request: RunRequest
    nproc: int
    protocol: str
    preset: str
    config_hash: str
    folds: tuple[int, ...]  # the run's folds (the protocol's, or the one of ``--fold``)
    weights: tuple[tuple[str, str], ...]  # (config path, reference) of its weights keys

    @property
    def identity(self) -> tuple[Any, ...]:
        r = self.request
        return (r.method, r.dataset, self.protocol, self.config_hash, r.seed, str(r.kind), self.folds, self.weights,
                self.nproc)

    @property
    def label(self) -> str:
        sets = " ".join(f"{key}={value}" for key, value in self.request.assignments)
        return (f"{self.request.method}[{self.preset}] {self.request.dataset}/{self.protocol} "
                f"seed {self.request.seed}{' ' + sets if sets else ''}")

    def argv(self) -> list[str]:
        """The ``ferbench run`` arguments that execute this run by hand."""
        r = self.request
        args = ["run", "--method", r.method, "--dataset", r.dataset, "--protocol", self.protocol, "--preset",
                self.preset, "--seed", str(r.seed)]
        for key, value in r.assignments:
            args += ["--set", f"{key}={_scalar_text(value)}"]
        for option, value in (("--data-root", r.data_root), ("--db", r.db), ("--config", r.config_file)):
            if value:
                args += [option, value]
        if r.fold is not None:
            args += ["--fold", str(r.fold)]
        return args + (["--nproc", str(self.nproc)] if self.nproc > 1 else [])

    def command(self) -> str:
        return shlex.join(["ferbench", *self.argv()])


@dataclass
class Sweep:
    """A parsed sweep file: its runs in file order and how they execute."""

    name: str
    path: Path
    db: str | None
    runs: list[SweepRun]
    executor: Executor

    @property
    def runs_folder(self) -> Path:
        """With ``executor.db_per_run``: the folder of the runs' own databases, beside the sweep's."""
        main = Store(self.db).path
        return main.with_name(f"{main.stem}-runs")

    def run_db(self, run: SweepRun) -> str:
        """The database ``run`` writes: the sweep's, or with ``db_per_run`` one of its own (named by its
        identity, so that starting the sweep again resumes it there)."""
        if not self.executor.db_per_run:
            return str(Store(self.db).path)
        digest = hashlib.sha256(json.dumps(run.identity, default=str).encode()).hexdigest()[:16]
        return str(self.runs_folder / f"{self.name}-{digest}.duckdb")

    def stores(self) -> list[Store]:
        """Where the sweep's runs are recorded: its database (and the runs' own, with ``db_per_run``)."""
        own = sorted(self.runs_folder.glob("*.duckdb")) if self.executor.db_per_run else []
        return [Store(self.db), *(Store(path) for path in own)]


def load_sweep(path: str | Path, assignments: Sequence[tuple[str, Any]] = (), db: str | None = None) -> Sweep:
    """Read, expand and plan a sweep file; ``assignments`` (``--set``) apply to every run and ``db`` replaces
    the file's. Every run is planned (names, presets, config values checked) without loading data."""
    where = f"sweep file {str(path)!r}"
    spec = read_yaml_file(path, "sweep file")
    if not isinstance(spec, dict):
        raise UsageError(f"{where} must hold a mapping with a 'grid' (and optionally 'entries', 'executor', ...)")
    _check_keys(spec, TOP_KEYS, where)
    if "grid" not in spec:
        raise UsageError(f"{where} has no 'grid': give at least grid.method and grid.dataset")
    common = [*_assignments(spec.get("set") or {}, f"{where}: set"), *assignments]
    database = _expanded(db or _text(spec.get("db"), f"{where}: db"))
    data_root = _text(spec.get("data_root"), f"{where}: data_root")
    nproc = _positive_int(spec.get("nproc", 1), f"{where}: nproc")
    grid = spec["grid"]
    if not isinstance(grid, dict):
        raise UsageError(f"{where}: grid must be a mapping of {', '.join(GRID_KEYS)}")
    _check_keys(grid, GRID_KEYS, f"{where}: grid")
    entries = spec.get("entries") or [{}]
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise UsageError(f"{where}: entries must be a list of mappings (keys: {', '.join(ENTRY_KEYS)})")
    runs: list[SweepRun] = []
    seen: set[tuple[Any, ...]] = set()
    for index, entry in enumerate(entries):
        at = f"{where}: entries[{index}]" if "entries" in spec else f"{where}: grid"
        _check_keys(entry, ENTRY_KEYS, at)
        merged = {key: value for key, value in {**grid, **entry}.items() if key in GRID_KEYS}
        entry_nproc = _positive_int(entry.get("nproc", nproc), f"{at}: nproc")
        entry_root = _expanded(_text(entry.get("data_root", data_root), f"{at}: data_root"))
        for request in _requests(merged, common, database, entry_root, at):
            run = plan_sweep_run(request, entry_nproc)
            if run.identity not in seen:  # the same run named twice executes once
                seen.add(run.identity)
                runs.append(run)
    name = _text(spec.get("name"), f"{where}: name") or Path(path).stem
    return Sweep(name=name, path=Path(path), db=database, runs=runs,
                 executor=_executor(spec.get("executor") or {}, f"{where}: executor"))


def plan_sweep_run(request: RunRequest, nproc: int) -> SweepRun:
    """Plan one run as ``ferbench run`` would (no data, no weights resolved) and note its identity."""
    plan = plan_run(request, resolve_weights=False)
    folds = (request.fold,) if request.fold is not None else tuple(range(plan.dataset.protocols[plan.protocol].num_folds))
    return SweepRun(request=replace(request, protocol=plan.protocol, preset=plan.preset), nproc=nproc,
                    protocol=plan.protocol, preset=plan.preset, config_hash=config_hash(plan.config), folds=folds,
                    weights=tuple(sorted(weights_keys(plan.config).items())))


def _requests(grid: Mapping[str, Any], common: list[tuple[str, Any]], db: str | None, data_root: str | None,
              where: str) -> Iterable[RunRequest]:
    for key in ("method", "dataset"):
        if key not in grid:
            raise UsageError(f"{where} names no {key}: set grid.{key} (a name or a list of names)")
    axes = {key: _values(grid.get(key), key, where) for key in ("method", "dataset", "protocol", "preset", "seed")}
    variants = grid.get("set", [{}])
    variants = [variants] if isinstance(variants, dict) else variants
    if not isinstance(variants, list) or not all(isinstance(v, dict) for v in variants):
        raise UsageError(f"{where}: set must be a mapping of KEY: VALUE or a list of such mappings")
    for method, dataset, protocol, preset, seed in itertools.product(*axes.values()):
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise UsageError(f"{where}: seed {seed!r} is not a non-negative integer")
        for variant in variants:
            yield RunRequest(method=str(method), dataset=str(dataset), protocol=protocol, preset=preset, seed=seed,
                             assignments=[*common, *_assignments(variant, f"{where}: set")], db=db,
                             data_root=data_root, progress=False)


def _values(value: Any, key: str, where: str) -> list[Any]:
    """A grid axis as a list (None: the default, i.e. one unnamed value; seeds default to 0)."""
    if value is None:
        return [0] if key == "seed" else [None]
    values = value if isinstance(value, list) else [value]
    if not values:
        raise UsageError(f"{where}: {key} is an empty list")
    if key != "seed" and not all(isinstance(v, str) for v in values):
        raise UsageError(f"{where}: {key} must be a name or a list of names, got {value!r}")
    return values


def _assignments(mapping: Any, where: str) -> list[tuple[str, Any]]:
    """``{train.epochs: 5}`` -> ``[("train.epochs", 5)]`` (keys and values are checked when planned)."""
    if not isinstance(mapping, dict) or not all(isinstance(k, str) and all(k.split(".")) for k in mapping):
        raise UsageError(f"{where} must be a mapping of dotted KEY: VALUE, e.g. {{train.epochs: 5}}")
    return list(mapping.items())


def _executor(section: Any, where: str) -> Executor:
    if not isinstance(section, dict):
        raise UsageError(f"{where} must be a mapping (kind: local or slurm, ...)")
    names = tuple(Executor.__dataclass_fields__)
    _check_keys(section, names, where)
    executor = Executor(**section)
    for name, value, choices in (("kind", executor.kind, KINDS), ("jobs", executor.jobs, JOBS),
                                 ("cluster", executor.cluster, CLUSTERS)):
        if value not in choices:
            raise UsageError(f"{where}: {name} {value!r} is not one of: {', '.join(choices)}")
    for name in ("workers", "time_minutes", "cpus_per_task"):
        if getattr(executor, name) is not None:
            _positive_int(getattr(executor, name), f"{where}: {name}")
    if executor.gpus_per_node is not None and executor.gpus_per_node != 0:
        _positive_int(executor.gpus_per_node, f"{where}: gpus_per_node")
    if executor.mem_gb is not None and (not isinstance(executor.mem_gb, (int, float)) or executor.mem_gb <= 0):
        raise UsageError(f"{where}: mem_gb must be a positive number, got {executor.mem_gb!r}")
    devices = section.get("devices", [])
    if not isinstance(devices, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                                for d in devices):
        raise UsageError(f"{where}: devices must be a list of GPU indices, e.g. [0, 1, 2, 3]")
    if executor.db_per_run is not False and (executor.db_per_run is not True or executor.jobs == "fold"):
        raise UsageError(f"{where}: db_per_run must be true or false, and true only with one job per run "
                         "(the folds of a run share its database)")
    if not isinstance(executor.slurm, dict):
        raise UsageError(f"{where}: slurm must be a mapping of submitit slurm_* parameters without the prefix")
    return replace(executor, devices=tuple(devices))


def _check_keys(mapping: Mapping[str, Any], valid: Sequence[str], where: str) -> None:
    for key in mapping:
        if key not in valid:
            raise UsageError(f"{where}: unknown key {key!r}{did_you_mean(str(key), valid)}; "
                             f"valid keys: {', '.join(valid)}")


def _positive_int(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise UsageError(f"{where} must be a positive integer, got {value!r}")
    return value


def _text(value: Any, where: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise UsageError(f"{where} must be a string, got {value!r}")
    return value


def _expanded(path: str | None) -> str | None:
    """``~`` expanded here: jobs elsewhere and pasted commands must name the same folder."""
    return str(Path(path).expanduser()) if path else path


def _scalar_text(value: Any) -> str:
    """A ``--set`` value as the command line writes it: JSON (valid YAML) unless a plain string reads back as
    itself."""
    if isinstance(value, str) and value and parse_assignment(f"k={value}")[1] == value:
        return value
    return json.dumps(value)


# --- state in the database -----------------------------------------------------------------------------

#: A sweep run's state: completed; executing (or killed without a trace); failed or interrupted; some
#: folds recorded by per-fold jobs; never started.
DONE, RUNNING, FAILED, PARTIAL, PENDING = "done", "running", "failed", "partial", "pending"
_STATE_OF = {Status.COMPLETED: DONE, Status.RUNNING: RUNNING, Status.FAILED: FAILED,
             Status.INTERRUPTED: FAILED, Status.PARTIAL: PARTIAL}


@dataclass
class RunState:
    """Where a sweep run stands: its state, the recorded run it matched, and that run's recorded folds."""

    run: SweepRun
    state: str
    run_id: str | None = None
    folds_done: frozenset[int] = frozenset()

    @property
    def missing_folds(self) -> tuple[int, ...]:
        return tuple(k for k in self.run.folds if k not in self.folds_done)


def run_states(runs: Sequence[SweepRun], stores: Sequence[Store]) -> list[RunState]:
    """Each run's state from the databases: a completed run with its identity makes it done; otherwise
    the newest such run says running, failed or partial; none: pending."""
    rows: list[dict[str, Any]] = []
    recorded: dict[str, set[int]] = {}
    for store in stores:
        if not store.path.exists():
            continue
        rows += store.query("SELECT run_id, method, dataset, protocol, config_hash, seed, kind, folds, weights, "
                            "coalesce(world_size, 1) AS world_size, status, started_at FROM runs")
        for row in store.query("SELECT run_id, fold FROM folds WHERE status = ?", [Status.COMPLETED]):
            recorded.setdefault(row["run_id"], set()).add(row["fold"])
    by_identity: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in sorted(rows, key=lambda r: (r["started_at"] is not None, r["started_at"] or 0)):
        weights = tuple(sorted((path, w.get("ref")) for path, w in (row["weights"] or {}).items()))
        identity = (row["method"], row["dataset"], row["protocol"], row["config_hash"], row["seed"],
                    str(row["kind"] or RunKind.TRAIN), tuple(row["folds"] or ()), weights, row["world_size"])
        by_identity.setdefault(identity, []).append(row)
    states = []
    for run in runs:
        matches = by_identity.get(run.identity, [])
        completed = [row for row in matches if row["status"] == Status.COMPLETED]
        chosen = completed[-1] if completed else (matches[-1] if matches else None)
        if chosen is None:
            states.append(RunState(run, PENDING))
            continue
        states.append(RunState(run, _STATE_OF.get(chosen["status"], FAILED), chosen["run_id"],
                               frozenset(recorded.get(chosen["run_id"], ()))))
    return states


def state_counts(states: Sequence[RunState]) -> dict[str, int]:
    """How many runs are in each state (every state listed, in a fixed order)."""
    return {name: sum(s.state == name for s in states) for name in (DONE, RUNNING, PARTIAL, FAILED, PENDING)}
