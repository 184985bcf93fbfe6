"""The results database: one DuckDB file shared by every run.

DuckDB lets one process write a file at a time, so ferbench never keeps the database open: each read
or write takes an exclusive lock on a sidecar ``<db>.lock`` file, opens the database, does its work in
one transaction and closes it. Concurrent ``ferbench run`` processes therefore queue for a few
milliseconds instead of failing, and a crash can lose at most the fold in progress.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from .errors import FerbenchError

DB_ENV = "FERBENCH_DB"
HOME_ENV = "FERBENCH_HOME"
LOCK_TIMEOUT_S = 600.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY, run_key VARCHAR, method VARCHAR, dataset VARCHAR, protocol VARCHAR,
    preset VARCHAR, seed INTEGER, config JSON, config_hash VARCHAR, manifest_hash VARCHAR,
    classes JSON, folds JSON, selection_rule VARCHAR, selected_on_test BOOLEAN, val_rule VARCHAR,
    device VARCHAR, versions JSON, git_commit VARCHAR, host VARCHAR, command VARCHAR,
    status VARCHAR, error VARCHAR, started_at TIMESTAMP, ended_at TIMESTAMP, weights JSON
);
CREATE TABLE IF NOT EXISTS manifests (
    manifest_hash VARCHAR PRIMARY KEY, dataset VARCHAR, protocol VARCHAR, manifest JSON
);
CREATE TABLE IF NOT EXISTS folds (
    run_id VARCHAR, fold INTEGER, status VARCHAR, selected_epoch INTEGER, selection JSON,
    n_train INTEGER, n_val INTEGER, n_test INTEGER, train_seconds DOUBLE, eval_seconds DOUBLE,
    images_per_second DOUBLE, ended_at TIMESTAMP, weights_path VARCHAR, weights_sha256 VARCHAR,
    PRIMARY KEY (run_id, fold)
);
CREATE TABLE IF NOT EXISTS fold_metrics (
    run_id VARCHAR, fold INTEGER, metric VARCHAR, value DOUBLE, PRIMARY KEY (run_id, fold, metric)
);
CREATE TABLE IF NOT EXISTS predictions (
    run_id VARCHAR, fold INTEGER, sample_id VARCHAR, label INTEGER, prediction INTEGER, probs FLOAT[]
);
CREATE TABLE IF NOT EXISTS curves (
    run_id VARCHAR, fold INTEGER, epoch INTEGER, name VARCHAR, value DOUBLE
);
ALTER TABLE runs ADD COLUMN IF NOT EXISTS weights JSON;
ALTER TABLE folds ADD COLUMN IF NOT EXISTS weights_path VARCHAR;
ALTER TABLE folds ADD COLUMN IF NOT EXISTS weights_sha256 VARCHAR;
"""

TABLES = ("runs", "manifests", "folds", "fold_metrics", "predictions", "curves")
#: Columns stored as JSON text; :meth:`Store.query` decodes them (also when aliased to these names).
JSON_COLUMNS = frozenset({"config", "classes", "folds", "versions", "manifest", "selection", "weights"})


def home() -> Path:
    """ferbench's data folder: ``$FERBENCH_HOME`` or ``~/.ferbench``."""
    return Path(os.environ.get(HOME_ENV) or Path.home() / ".ferbench").expanduser()


def default_db_path() -> Path:
    """``$FERBENCH_DB``, else ``<home>/ferbench.duckdb``."""
    return Path(os.environ.get(DB_ENV) or home() / "ferbench.duckdb").expanduser()


class Store:
    """Short-lived, lock-serialised access to the results database."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path).expanduser() if path else default_db_path()

    @property
    def artifacts_dir(self) -> Path:
        """Where checkpoints of this database's runs live (beside the database file)."""
        return self.path.with_suffix("").with_name(self.path.stem + "-artifacts")

    @contextlib.contextmanager
    def connect(self, read_only: bool = False) -> Iterator[Any]:
        """An open connection inside a transaction, holding the cross-process lock."""
        import duckdb

        if read_only and not self.path.exists():
            raise FerbenchError(f"no results database at {self.path}; run `ferbench run` first or pass --db")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lock_file = open(self.path.with_name(self.path.name + ".lock"), "a+")
        except OSError as exc:
            raise FerbenchError(f"cannot use database location {self.path}: {exc.strerror or exc}") from None
        with lock_file:
            self._acquire(lock_file)
            try:
                con = duckdb.connect(str(self.path))
            except duckdb.Error as exc:
                raise FerbenchError(f"cannot open results database {self.path}: {exc}") from None
            try:
                con.execute(SCHEMA)
                con.execute("BEGIN TRANSACTION")
                yield con
                con.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(Exception):
                    con.execute("ROLLBACK")
                raise
            finally:
                con.close()
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def _acquire(self, lock_file: Any) -> None:
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        while True:
            try:
                fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise FerbenchError(f"results database {self.path} stayed locked for {LOCK_TIMEOUT_S:.0f}s") from None
                time.sleep(0.05)

    # --- writes -------------------------------------------------------------------------------
    def insert_run(self, row: dict[str, Any]) -> None:
        """Record a new run (status ``running``)."""
        columns = ", ".join(row)
        with self.connect() as con:
            con.execute(f"INSERT INTO runs ({columns}) VALUES ({', '.join('?' * len(row))})",
                        [_sql_value(v) for v in row.values()])

    def update_run(self, run_id: str, **fields: Any) -> None:
        """Change columns of a run (status, end time, error...)."""
        assignments = ", ".join(f"{name} = ?" for name in fields)
        with self.connect() as con:
            con.execute(f"UPDATE runs SET {assignments} WHERE run_id = ?",
                        [_sql_value(v) for v in fields.values()] + [run_id])

    def save_manifest(self, manifest_hash: str, dataset: str, protocol: str, manifest: dict[str, Any]) -> None:
        """Store a split manifest once per hash."""
        with self.connect() as con:
            con.execute("INSERT OR IGNORE INTO manifests VALUES (?, ?, ?, ?)",
                        [manifest_hash, dataset, protocol, json.dumps(manifest)])

    def save_fold(self, run_id: str, fold: int, info: dict[str, Any], sample_ids: Sequence[str],
                  labels: np.ndarray, probabilities: np.ndarray, curves: list[tuple[int, str, float]]) -> None:
        """Store one finished fold atomically: its predictions, curves and bookkeeping."""
        predictions = probabilities.argmax(axis=1)
        with self.connect() as con:
            for table in ("folds", "fold_metrics", "predictions", "curves"):
                con.execute(f"DELETE FROM {table} WHERE run_id = ? AND fold = ?", [run_id, fold])
            con.execute(
                "INSERT INTO folds (run_id, fold, status, selected_epoch, selection, n_train, n_val, n_test, "
                "train_seconds, eval_seconds, images_per_second, ended_at) "
                "VALUES (?, ?, 'completed', ?, ?, ?, ?, ?, ?, ?, ?, now())",
                [run_id, fold, info["selected_epoch"], json.dumps(info["selection"]), info["n_train"],
                 info["n_val"], info["n_test"], info["train_seconds"], info["eval_seconds"],
                 info["images_per_second"]])
            con.executemany(
                "INSERT INTO predictions VALUES (?, ?, ?, ?, ?, ?)",
                [(run_id, fold, sid, int(y), int(p), prob) for sid, y, p, prob in
                 zip(sample_ids, labels.tolist(), predictions.tolist(), probabilities.astype(np.float32).tolist())])
            if curves:
                con.executemany("INSERT INTO curves VALUES (?, ?, ?, ?, ?)",
                                [(run_id, fold, epoch, name, float(value)) for epoch, name, value in curves])

    def save_fold_metrics(self, run_id: str, fold: int, metrics: dict[str, float]) -> None:
        """Store the scalar metrics computed from a fold's stored predictions."""
        with self.connect() as con:
            con.execute("DELETE FROM fold_metrics WHERE run_id = ? AND fold = ?", [run_id, fold])
            con.executemany("INSERT INTO fold_metrics VALUES (?, ?, ?, ?)",
                            [(run_id, fold, name, value) for name, value in metrics.items()])

    # --- reads --------------------------------------------------------------------------------
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Rows of a read-only query as dictionaries (JSON columns decoded)."""
        with self.connect(read_only=True) as con:
            cursor = con.execute(sql, list(params))
            names = [d[0] for d in cursor.description]
            return [{name: _decode(name, value) for name, value in zip(names, row)} for row in cursor.fetchall()]

    def predictions(self, run_id: str, fold: int) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
        """(sample ids, labels, predictions, probabilities) of one fold, as stored."""
        with self.connect(read_only=True) as con:
            rows = con.execute("SELECT sample_id, label, prediction, probs FROM predictions "
                               "WHERE run_id = ? AND fold = ? ORDER BY sample_id", [run_id, fold]).fetchall()
        ids = [r[0] for r in rows]
        labels = np.array([r[1] for r in rows], dtype=np.int64)
        predictions = np.array([r[2] for r in rows], dtype=np.int64)
        probabilities = np.array([r[3] for r in rows], dtype=np.float32)
        return ids, labels, predictions, probabilities

    def export(self, out_dir: Path, fmt: str) -> list[Path]:
        """Write every table to ``out_dir/<table>.<fmt>`` (csv or parquet)."""
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        with self.connect(read_only=True) as con:
            for table in TABLES:
                target = out_dir / f"{table}.{fmt}"
                option = "(FORMAT parquet)" if fmt == "parquet" else "(HEADER, DELIMITER ',')"
                escaped = str(target).replace("'", "''")
                con.execute(f"COPY {table} TO '{escaped}' {option}")
                written.append(target)
        return written


def _sql_value(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, (dict, list, tuple)) else value


def _decode(name: str, value: Any) -> Any:
    return json.loads(value) if name in JSON_COLUMNS and isinstance(value, str) else value
