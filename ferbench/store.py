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

from .diskio import describe, ensure_dir
from .errors import FerbenchError, StorageError
from .settings import Status
from .statedict import file_sha256

DB_ENV = "FERBENCH_DB"
HOME_ENV = "FERBENCH_HOME"
LOCK_TIMEOUT_S = 600.0

#: Every table's columns. New columns are appended here and added to older databases on first use
#: (``ALTER TABLE ... ADD COLUMN IF NOT EXISTS``), so a database written by an older ferbench keeps working.
COLUMNS: dict[str, list[tuple[str, str]]] = {
    "runs": [
        ("run_id", "VARCHAR PRIMARY KEY"), ("run_key", "VARCHAR"), ("method", "VARCHAR"), ("dataset", "VARCHAR"),
        ("protocol", "VARCHAR"), ("preset", "VARCHAR"), ("seed", "BIGINT"), ("config", "JSON"),
        ("config_hash", "VARCHAR"), ("manifest_hash", "VARCHAR"), ("classes", "JSON"), ("folds", "JSON"),
        ("selection_rule", "VARCHAR"), ("selected_on_test", "BOOLEAN"), ("val_rule", "VARCHAR"),
        ("device", "VARCHAR"), ("versions", "JSON"), ("git_commit", "VARCHAR"), ("host", "VARCHAR"),
        ("command", "VARCHAR"), ("status", "VARCHAR"), ("error", "VARCHAR"), ("started_at", "TIMESTAMP"),
        ("ended_at", "TIMESTAMP"),
        # what kind of run (train / eval / pretrain), the weights references it resolved, and flags that
        # make it less comparable (e.g. test images seen during pre-training)
        ("kind", "VARCHAR DEFAULT 'train'"), ("weights", "JSON"), ("flags", "JSON"), ("parameters", "BIGINT"),
        # cost: processes (ranks) and their accelerator, wall time over all sessions, largest peak memory of
        # a process (CUDA allocations on a GPU, resident set on the CPU), training images per second
        ("world_size", "INTEGER DEFAULT 1"), ("accelerator", "VARCHAR"), ("wall_seconds", "DOUBLE"),
        ("peak_memory_bytes", "BIGINT"), ("images_per_second", "DOUBLE"),
    ],
    "manifests": [("manifest_hash", "VARCHAR PRIMARY KEY"), ("dataset", "VARCHAR"), ("protocol", "VARCHAR"),
                  ("manifest", "JSON")],
    "folds": [
        ("run_id", "VARCHAR"), ("fold", "INTEGER"), ("status", "VARCHAR"), ("selected_epoch", "INTEGER"),
        ("selection", "JSON"), ("n_train", "INTEGER"), ("n_val", "INTEGER"), ("n_test", "INTEGER"),
        ("train_seconds", "DOUBLE"), ("eval_seconds", "DOUBLE"), ("images_per_second", "DOUBLE"),
        ("ended_at", "TIMESTAMP"),
        # the selected epoch's weights, kept as safetensors beside the database (``run:<id>/fold-<k>``)
        ("weights_path", "VARCHAR"), ("weights_sha256", "VARCHAR"),
    ],
    "fold_metrics": [("run_id", "VARCHAR"), ("fold", "INTEGER"), ("metric", "VARCHAR"), ("value", "DOUBLE")],
    "predictions": [("run_id", "VARCHAR"), ("fold", "INTEGER"), ("sample_id", "VARCHAR"), ("label", "INTEGER"),
                    ("prediction", "INTEGER"), ("probs", "FLOAT[]")],
    "curves": [("run_id", "VARCHAR"), ("fold", "INTEGER"), ("epoch", "INTEGER"), ("name", "VARCHAR"),
               ("value", "DOUBLE")],
    # files a run produced besides its predictions: image grids, per-sample outputs
    "artifacts": [("run_id", "VARCHAR"), ("fold", "INTEGER"), ("kind", "VARCHAR"), ("name", "VARCHAR"),
                  ("path", "VARCHAR"), ("sha256", "VARCHAR"), ("bytes", "BIGINT")],
    # the images a pre-training run learned from, to refuse fine-tunes whose test images it saw
    "pretrain_images": [("run_id", "VARCHAR"), ("dataset", "VARCHAR"), ("sample_id", "VARCHAR")],
}
PRIMARY_KEYS = {"folds": "run_id, fold", "fold_metrics": "run_id, fold, metric"}
TABLES = tuple(COLUMNS)
#: Columns stored as JSON text; :meth:`Store.query` decodes them (also when aliased to these names).
JSON_COLUMNS = frozenset(name for columns in COLUMNS.values() for name, kind in columns if kind == "JSON")


def _schema_statements() -> list[str]:
    statements = []
    for table, columns in COLUMNS.items():
        body = ", ".join(f"{name} {kind}" for name, kind in columns)
        key = f", PRIMARY KEY ({PRIMARY_KEYS[table]})" if table in PRIMARY_KEYS else ""
        statements.append(f"CREATE TABLE IF NOT EXISTS {table} ({body}{key})")
        statements += [f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {name} {kind.replace(' PRIMARY KEY', '')}"
                       for name, kind in columns]
    return statements


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
        self._schema_ready = False

    @property
    def artifacts_dir(self) -> Path:
        """Where checkpoints, kept weights and image outputs of this database's runs live (beside it)."""
        return self.path.with_suffix("").with_name(self.path.stem + "-artifacts")

    @contextlib.contextmanager
    def connect(self, read_only: bool = False) -> Iterator[Any]:
        """An open connection inside a transaction, holding the cross-process lock (shared for reads,
        exclusive for writes). Reads open the file read-only, so a database on read-only storage can
        still be listed, rendered and exported. A damaged file, a full disk or a location that cannot be
        written is a one-line :class:`StorageError` naming the database."""
        import duckdb

        if read_only and not self.path.exists():
            raise FerbenchError(f"no results database at {self.path}; run `ferbench run` first or pass --db")
        if read_only and not self._schema_ready and _writable(self.path):
            with contextlib.suppress(StorageError), self.connect():
                pass  # bring an older database's schema up to date once (reads go on without it)
        with self._locked(exclusive=not read_only):
            try:
                con = duckdb.connect(str(self.path), read_only=read_only)
            except duckdb.Error as exc:
                raise StorageError(self._problem("open", exc)) from None
            try:
                if not read_only and not self._schema_ready:
                    for statement in _schema_statements():
                        con.execute(statement)
                    self._schema_ready = True
                con.execute("BEGIN TRANSACTION")
                yield con
                con.execute("COMMIT")
            except BaseException as exc:
                with contextlib.suppress(Exception):
                    con.execute("ROLLBACK")
                if isinstance(exc, duckdb.Error) and _storage_problem(exc):
                    raise StorageError(self._problem("read" if read_only else "write", exc)) from None
                raise
            finally:
                con.close()

    def _problem(self, verb: str, exc: Exception) -> str:
        """One line for a database that cannot be opened, read or written, and what to do."""
        text = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        if "not a valid DuckDB database" in text or "Corrupt database" in text or "Could not read enough" in text:
            hint = "the file is damaged or not a DuckDB database: restore a backup, or move it aside to start anew"
        elif "No space left" in text or "Disk quota" in text:
            hint = "the disk is full: free some space, then start the same command again (runs resume)"
        elif "Permission denied" in text or "Read-only file system" in text:
            hint = "its folder or file is not writable: fix the permissions or choose another --db"
        else:
            hint = "check the file, its folder and the free space"
        return f"cannot {verb} results database {self.path}: {text} ({hint})"

    @contextlib.contextmanager
    def _locked(self, exclusive: bool) -> Iterator[None]:
        """Hold the sidecar lock file. A reader opens it read-only, and goes without it when it cannot
        be created (a database in a read-only folder: nobody can write there either)."""
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            if exclusive:
                ensure_dir(self.path.parent, "results database")
            lock_file = open(lock_path, "r" if not exclusive and lock_path.exists() else "a+")
        except OSError as exc:
            if not exclusive:
                yield
                return
            raise StorageError(describe(exc, "the results database lock", lock_path)) from None
        with lock_file:
            self._acquire(lock_file, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def _acquire(self, lock_file: Any, mode: int) -> None:
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        while True:
            try:
                fcntl.flock(lock_file, mode | fcntl.LOCK_NB)
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

    def complete_if_recorded(self, run_id: str, folds: int) -> Status:
        """Mark the run completed when ``folds`` of its folds are recorded (checked and set in one
        transaction, so of several parts ending together the last one completes it); its status after."""
        with self.connect() as con:
            con.execute("UPDATE runs SET status = ? WHERE run_id = ? AND (SELECT count(*) FROM folds "
                        "WHERE run_id = ? AND status = ?) >= ?",
                        [Status.COMPLETED, run_id, run_id, Status.COMPLETED, folds])
            return Status(con.execute("SELECT status FROM runs WHERE run_id = ?", [run_id]).fetchone()[0])

    def save_manifest(self, manifest_hash: str, dataset: str, protocol: str, manifest: dict[str, Any]) -> None:
        """Store a split manifest once per hash."""
        with self.connect() as con:
            con.execute("INSERT OR IGNORE INTO manifests VALUES (?, ?, ?, ?)",
                        [manifest_hash, dataset, protocol, json.dumps(manifest)])

    def save_fold(self, run_id: str, fold: int, info: dict[str, Any], sample_ids: Sequence[str],
                  labels: np.ndarray, probabilities: np.ndarray | None, curves: list[tuple[int, str, float]],
                  artifacts: Sequence[tuple[str, str, Path]] = ()) -> None:
        """Store one finished fold atomically: its predictions (none for a pre-training fold), curves,
        bookkeeping and the ``(kind, name, path)`` files it produced."""
        with self.connect() as con:
            for table in ("folds", "fold_metrics", "predictions", "curves", "artifacts"):
                con.execute(f"DELETE FROM {table} WHERE run_id = ? AND fold = ?", [run_id, fold])
            row = {"run_id": run_id, "fold": fold, "status": Status.COMPLETED.value, **info}
            row["selection"] = json.dumps(row["selection"])
            con.execute(f"INSERT INTO folds ({', '.join(row)}, ended_at) VALUES ({', '.join('?' * len(row))}, now())",
                        list(row.values()))
            if probabilities is not None:
                con.executemany(
                    "INSERT INTO predictions VALUES (?, ?, ?, ?, ?, ?)",
                    [(run_id, fold, sid, int(y), int(p), prob) for sid, y, p, prob in
                     zip(sample_ids, labels.tolist(), probabilities.argmax(axis=1).tolist(),
                         probabilities.astype(np.float32).tolist())])
            if curves:
                con.executemany("INSERT INTO curves VALUES (?, ?, ?, ?, ?)",
                                [(run_id, fold, epoch, name, float(value)) for epoch, name, value in curves])
            for kind, name, path in artifacts:
                self._insert_artifact(con, run_id, fold, kind, name, path)

    def save_fold_metrics(self, run_id: str, fold: int, metrics: dict[str, float]) -> None:
        """Store the scalar metrics computed from a fold's stored predictions."""
        with self.connect() as con:
            con.execute("DELETE FROM fold_metrics WHERE run_id = ? AND fold = ?", [run_id, fold])
            con.executemany("INSERT INTO fold_metrics VALUES (?, ?, ?, ?)",
                            [(run_id, fold, name, value) for name, value in metrics.items()])

    def _insert_artifact(self, con: Any, run_id: str, fold: int, kind: str, name: str, path: Path) -> None:
        """Record a file a fold produced (an image grid, per-sample outputs) with its hash and size; a file
        in the artifacts folder is recorded relative to it, so the database and its folder can move together."""
        stored = path.relative_to(self.artifacts_dir) if path.is_relative_to(self.artifacts_dir) else path
        con.execute("INSERT INTO artifacts VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [run_id, fold, kind, name, str(stored), file_sha256(path), path.stat().st_size])

    def save_pretrain_images(self, run_id: str, dataset: str, sample_ids: Sequence[str]) -> None:
        """Record which images a pre-training run learned from (once per run)."""
        with self.connect() as con:
            con.execute("DELETE FROM pretrain_images WHERE run_id = ?", [run_id])
            con.executemany("INSERT INTO pretrain_images VALUES (?, ?, ?)",
                            [(run_id, dataset, sample_id) for sample_id in sample_ids])

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


def _writable(path: Path) -> bool:
    """Whether the database file and its folder (where DuckDB writes its log) can be written."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


def _storage_problem(exc: Exception) -> bool:
    """Whether a DuckDB error comes from the file or the disk rather than from a statement."""
    import duckdb

    return (isinstance(exc, (duckdb.IOException, duckdb.FatalException, duckdb.PermissionException))
            or type(exc) is duckdb.Error  # "Corrupt database file"
            or any(text in str(exc) for text in ("Could not write", "Could not read", "No space left")))


def _sql_value(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, (dict, list, tuple)) else value


def _decode(name: str, value: Any) -> Any:
    return json.loads(value) if name in JSON_COLUMNS and isinstance(value, str) else value
