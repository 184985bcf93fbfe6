"""``ferbench db check``: find (and with ``--repair`` fix) what interrupted writes and lost processes leave.

Each check yields :class:`Finding`\\ s; a finding that can be fixed safely carries its repair. Runs that a
live process holds (its per-run lock, :class:`~ferbench.locks.RunLock`) are left alone: what looks
unfinished there is work in progress.

- orphan rows: rows of a run that does not exist, or of a fold that was never recorded -> deleted;
- folds without metrics (or lacking a registered scalar metric) -> computed from the stored predictions;
- runs stuck at ``running`` whose process is gone (their run lock is free) -> marked ``interrupted``, which
  the same command resumes;
- kept weights and artifact files that are missing or whose SHA-256 differs from the recorded one -> reported
  (re-run the run with ``--fresh`` to produce them again);
- temporary files of killed processes and checkpoints of folds already recorded -> deleted.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from .diskio import stale_temporaries
from .locks import RunLock
from .plugins import Registry, registry
from .provenance import host
from .settings import RunKind, Status
from .statedict import file_sha256
from .store import Store
from .weights import kept_path

#: Tables whose rows belong to a fold of a run (``pretrain_images`` belongs to a run only).
FOLD_TABLES = ("fold_metrics", "predictions", "curves", "artifacts")


@dataclass
class Finding:
    """One problem: what kind, where, and the repair (None when it needs a person)."""

    kind: str
    text: str
    repair_text: str | None = None
    repair: Callable[[], None] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "text": self.text, "repair": self.repair_text}


def check(store: Store, reg: Registry | None = None) -> list[Finding]:
    """Every finding of every check, in a stable order."""
    reg = reg or registry()
    runs = {row["run_id"]: row for row in store.query("SELECT run_id, run_key, status, host, kind, classes FROM runs")}
    busy = {run_id for run_id, row in runs.items() if row["run_key"] and not _lock(store, row).is_free()}
    return [*_orphans(store), *_missing_metrics(store, runs, busy, reg), *_stale_running(store, runs, busy),
            *_files(store), *_leftovers(store, busy)]


def _lock(store: Store, run: dict[str, Any]) -> RunLock:
    return RunLock(store.artifacts_dir, str(run["run_key"]))


def _orphans(store: Store) -> Iterator[Finding]:
    for table in ("folds", *FOLD_TABLES, "pretrain_images"):
        for row in store.query(f"SELECT run_id, count(*) AS n FROM {table} t WHERE NOT EXISTS "
                               f"(SELECT 1 FROM runs r WHERE r.run_id = t.run_id) GROUP BY run_id ORDER BY run_id"):
            text = f"{row['n']} {table} row(s) of run {row['run_id']}, which is not in the runs table"
            yield Finding("orphan rows", text, "delete them", _delete(store, table, "run_id = ?", [row["run_id"]]))
    for table in FOLD_TABLES:
        for row in store.query(
                f"SELECT t.run_id, t.fold, count(*) AS n FROM {table} t WHERE EXISTS (SELECT 1 FROM runs r WHERE "
                f"r.run_id = t.run_id) AND NOT EXISTS (SELECT 1 FROM folds f WHERE f.run_id = t.run_id AND "
                f"f.fold = t.fold) GROUP BY t.run_id, t.fold ORDER BY t.run_id, t.fold"):
            yield Finding("orphan rows", f"{row['n']} {table} row(s) of fold {row['fold']} of run {row['run_id']}, "
                                         "a fold that was never recorded", "delete them",
                          _delete(store, table, "run_id = ? AND fold = ?", [row["run_id"], row["fold"]]))


def _delete(store: Store, table: str, where: str, params: list[Any]) -> Callable[[], None]:
    def repair() -> None:
        with store.connect() as con:
            con.execute(f"DELETE FROM {table} WHERE {where}", params)
    return repair


def _missing_metrics(store: Store, runs: dict[str, Any], busy: set[str], reg: Registry) -> Iterator[Finding]:
    wanted = sorted(name for name, spec in reg.metrics.items() if spec.kind == "scalar")
    have: dict[tuple[str, int], set[str]] = {}
    for row in store.query("SELECT run_id, fold, metric FROM fold_metrics"):
        have.setdefault((row["run_id"], row["fold"]), set()).add(row["metric"])
    counted = {(row["run_id"], row["fold"]): row["n"] for row in store.query(
        "SELECT run_id, fold, count(*) AS n FROM predictions GROUP BY run_id, fold")}
    for row in store.query("SELECT run_id, fold FROM folds WHERE status = ? ORDER BY run_id, fold", [Status.COMPLETED]):
        run, key = runs.get(row["run_id"]), (row["run_id"], row["fold"])
        if run is None or run["kind"] == RunKind.PRETRAIN or row["run_id"] in busy:
            continue
        missing = [name for name in wanted if name not in have.get(key, set())]
        if not missing:
            continue
        where = f"fold {row['fold']} of run {row['run_id']}"
        if not counted.get(key):
            yield Finding("fold without metrics", f"{where} has no metrics and no stored predictions to compute "
                                                  "them from (run it again with --fresh)")
            continue
        yield Finding("fold without metrics", f"{where} lacks {', '.join(missing)}",
                      "compute them from its stored predictions",
                      _rescore(store, reg, row["run_id"], row["fold"], len(run["classes"] or []), missing))


def _rescore(store: Store, reg: Registry, run_id: str, fold: int, num_classes: int,
             missing: list[str]) -> Callable[[], None]:
    def repair() -> None:
        from .contracts import scalar_metrics

        _, labels, _, probabilities = store.predictions(run_id, fold)
        values = scalar_metrics(labels, probabilities, num_classes, reg)
        with store.connect() as con:
            con.executemany("INSERT OR REPLACE INTO fold_metrics VALUES (?, ?, ?, ?)",
                            [(run_id, fold, name, values[name]) for name in missing if name in values])
    return repair


def _stale_running(store: Store, runs: dict[str, Any], busy: set[str]) -> Iterator[Finding]:
    here = host()
    for run_id, run in sorted(runs.items()):
        if run["status"] != Status.RUNNING or run_id in busy:
            continue
        if run["host"] and run["host"] != here:
            yield Finding("stuck running", f"run {run_id} reads running; it was started on host {run['host']}, so "
                                           "whether its process is alive cannot be told here (check it there)")
            continue
        yield Finding("stuck running", f"run {run_id} reads running but no process executes it",
                      "mark it interrupted (the same command resumes it)", _mark_interrupted(store, run))


def _mark_interrupted(store: Store, run: dict[str, Any]) -> Callable[[], None]:
    def repair() -> None:
        lock = _lock(store, run)
        if not lock.acquire(blocking=False):
            return  # a process took the run up meanwhile: it is no longer stuck
        try:
            store.update_run(run["run_id"], status=Status.INTERRUPTED,
                             error="its process ended without recording why (found by ferbench db check)")
        finally:
            lock.release()
    return repair


def _files(store: Store) -> Iterator[Finding]:
    rows = [{"what": "kept weights", **row} for row in store.query(
        "SELECT run_id, fold, weights_path AS path, weights_sha256 AS sha256 FROM folds "
        "WHERE weights_path IS NOT NULL ORDER BY run_id, fold")]
    rows += [{"what": f"{row['kind']} artifact {row['name']}", **row} for row in store.query(
        "SELECT run_id, fold, kind, name, path, sha256 FROM artifacts ORDER BY run_id, fold, kind, name")]
    for row in rows:
        path, where = kept_path(store, row["path"]), f"fold {row['fold']} of run {row['run_id']}"
        if not path.is_file():
            yield Finding("missing file", f"{row['what']} of {where}: {path} is missing "
                                          "(run it again with --fresh to produce it)")
        elif row["sha256"] and file_sha256(path) != row["sha256"]:
            yield Finding("changed file", f"{row['what']} of {where}: {path} no longer has the recorded sha256 "
                                          f"{row['sha256'][:12]}... (restore it, or run again with --fresh)")


def _leftovers(store: Store, busy: set[str]) -> Iterator[Finding]:
    for path in stale_temporaries(store.artifacts_dir):
        yield Finding("leftover file", f"{path}: a temporary file of a process that was killed while writing it",
                      "delete it", path.unlink)
    recorded = {(row["run_id"], row["fold"]) for row in store.query(
        "SELECT run_id, fold FROM folds WHERE status = ?", [Status.COMPLETED])}
    for run_id, fold in sorted(recorded):
        if run_id in busy:
            continue
        for path in _checkpoints(store.artifacts_dir / run_id, fold):
            yield Finding("leftover file", f"{path}: checkpoint of fold {fold} of run {run_id}, which is recorded",
                          "delete it", path.unlink)


def _checkpoints(folder: Path, fold: int) -> list[Path]:
    return [path for path in (folder / f"fold-{fold}.pt", folder / f"fold-{fold}.prev.pt") if path.is_file()]


def repair(findings: list[Finding]) -> list[Finding]:
    """Apply every available repair; returns the findings that remain (those without one)."""
    for finding in findings:
        if finding.repair is not None:
            finding.repair()
    return [finding for finding in findings if finding.repair is None]
