"""``ferbench merge A.duckdb B.duckdb --into C.duckdb``: results databases combined, every run once.

For writers that cannot share one file (a file system whose ``flock`` does not hold across machines),
each worker writes its own database and ``merge`` combines them. A run is identified by its run id: a run
found in several inputs (copies of one database that went on apart) is kept once, from the input where
it went furthest (completed, then most recorded folds, then latest end); each of its folds comes from the
input that recorded it, so folds of one run recorded in different inputs are united. Manifests are kept
once per hash. The run folders of the artifacts (kept weights, images, per-sample outputs, checkpoints of
unfinished folds) are copied beside the output, where the relative paths in the database point; absolute
paths are kept as they are. An existing output database is an input too, and is replaced in one step.
"""
from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from .errors import UsageError
from .settings import Status
from .store import COLUMNS, Store, _schema_statements

#: Tables whose rows belong to one fold of a run, and those that belong to a run as a whole.
FOLD_TABLES = ("folds", "fold_metrics", "predictions", "curves", "artifacts")
RUN_TABLES = ("runs", "pretrain_images")


@dataclass
class MergeReport:
    """What a merge kept: runs per input, runs found in several inputs, and run keys completed more than once."""

    output: Path
    runs: int
    runs_per_input: dict[str, int]
    shared_runs: int
    repeated_keys: int
    copied_files: int

    def lines(self) -> list[str]:
        lines = [f"{self.runs} run(s) in {self.output}"]
        lines += [f"  {count} from {name}" for name, count in self.runs_per_input.items()]
        if self.shared_runs:
            lines.append(f"{self.shared_runs} run(s) were in several inputs: each kept once, from where it went furthest")
        if self.repeated_keys:
            lines.append(f"note: {self.repeated_keys} run key(s) were completed by more than one run (the same run "
                         "executed twice); all are kept, `ferbench runs` lists them")
        lines.append(f"{self.copied_files} artifact file(s) copied")
        return lines


def merge_databases(inputs: Sequence[str | Path], output: str | Path) -> MergeReport:
    """Combine ``inputs`` into ``output`` (see the module docstring)."""
    target = Store(output)
    sources = [Store(path) for path in inputs]
    for store in sources:
        if not store.path.exists():
            raise UsageError(f"no results database at {store.path}; check the path")
    paths = list(dict.fromkeys(store.path.resolve() for store in sources))
    if target.path.exists() and target.path.resolve() not in paths:
        paths.append(target.path.resolve())
    tmp = target.path.with_name(f".{target.path.name}.merging-{os.getpid()}")
    with contextlib.ExitStack() as locks:
        locks.enter_context(target._locked(exclusive=True))
        for path in paths:
            if path != target.path.resolve():
                locks.enter_context(Store(path)._locked(exclusive=False))
        try:
            report = _merge_into(tmp, paths, target)
            os.replace(tmp, target.path)
        finally:
            tmp.unlink(missing_ok=True)
    return report


def _merge_into(tmp: Path, inputs: list[Path], target: Store) -> MergeReport:
    import duckdb

    con = duckdb.connect(str(tmp))
    try:
        for statement in _schema_statements():
            con.execute(statement)
        for index, path in enumerate(inputs):
            escaped = str(path).replace("'", "''")
            con.execute(f"ATTACH '{escaped}' AS s{index} (READ_ONLY)")
        _pick(con, len(inputs))
        for table in COLUMNS:
            for index in range(len(inputs)):
                _copy_rows(con, table, index)
        report = _report(con, inputs, target)
        report.copied_files = _copy_artifacts(con, inputs, target)
    finally:
        con.close()
    return report


def _pick(con: Any, n_inputs: int) -> None:
    """Temporary tables ``run_pick`` (run id -> input) and ``fold_pick`` ((run id, fold) -> input)."""
    runs = " UNION ALL ".join(
        f"SELECT run_id, {i} AS src, status, ended_at, (SELECT count(*) FROM s{i}.folds f WHERE f.run_id = r.run_id "
        f"AND f.status = '{Status.COMPLETED}') AS recorded FROM s{i}.runs r" for i in range(n_inputs))
    con.execute(f"CREATE TEMP TABLE run_pick AS SELECT run_id, src FROM (SELECT run_id, src, row_number() OVER "
                f"(PARTITION BY run_id ORDER BY status = '{Status.COMPLETED}' DESC, recorded DESC, "
                f"ended_at DESC NULLS LAST, src) AS rank FROM ({runs})) WHERE rank = 1")
    folds = " UNION ALL ".join(f"SELECT run_id, fold, {i} AS src, status, ended_at FROM s{i}.folds"
                               for i in range(n_inputs))
    con.execute(f"CREATE TEMP TABLE fold_pick AS SELECT run_id, fold, src FROM (SELECT f.run_id, f.fold, f.src, "
                f"row_number() OVER (PARTITION BY f.run_id, f.fold ORDER BY f.status = '{Status.COMPLETED}' DESC, "
                f"f.ended_at DESC NULLS LAST, f.src = p.src DESC, f.src) AS rank FROM ({folds}) f "
                f"LEFT JOIN run_pick p USING (run_id)) WHERE rank = 1")


def _copy_rows(con: Any, table: str, index: int) -> None:
    """Rows of ``table`` from input ``index`` that the picks give to it (columns both schemas have)."""
    have = {row[0] for row in con.execute("SELECT column_name FROM information_schema.columns "
                                          "WHERE table_catalog = ? AND table_name = ?", [f"s{index}", table]).fetchall()}
    if not have:
        return
    columns = ", ".join(name for name, _ in COLUMNS[table] if name in have)
    source = f"s{index}.{table}"
    if table == "manifests":
        con.execute(f"INSERT OR IGNORE INTO {table} ({columns}) SELECT {columns} FROM {source}")
        return
    run_is_mine = f"x.run_id IN (SELECT run_id FROM run_pick WHERE src = {index})"
    if table in RUN_TABLES:
        where = run_is_mine
    else:  # a fold's rows follow the fold's pick; rows of a fold no input recorded follow the run's
        where = (f"EXISTS (SELECT 1 FROM fold_pick p WHERE p.run_id = x.run_id AND p.fold = x.fold AND p.src = {index}) "
                 f"OR (NOT EXISTS (SELECT 1 FROM fold_pick p WHERE p.run_id = x.run_id AND p.fold = x.fold) "
                 f"AND {run_is_mine})")
    con.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {source} x WHERE {where}")


def _report(con: Any, inputs: list[Path], target: Store) -> MergeReport:
    per_input = {str(path): con.execute("SELECT count(*) FROM run_pick WHERE src = ?", [i]).fetchone()[0]
                 for i, path in enumerate(inputs)}
    copies = " UNION ALL ".join(f"SELECT run_id FROM s{i}.runs" for i in range(len(inputs)))
    shared = con.execute(f"SELECT count(*) FROM (SELECT run_id FROM ({copies}) GROUP BY run_id "
                         "HAVING count(*) > 1)").fetchone()[0]
    repeated = con.execute("SELECT count(*) FROM (SELECT run_key FROM runs WHERE status = ? AND run_key IS NOT NULL "
                           "GROUP BY run_key HAVING count(*) > 1)", [Status.COMPLETED]).fetchone()[0]
    total = con.execute("SELECT count(*) FROM runs").fetchone()[0]
    return MergeReport(output=target.path, runs=total, runs_per_input=per_input, shared_runs=shared,
                       repeated_keys=repeated, copied_files=0)


def _copy_artifacts(con: Any, inputs: list[Path], target: Store) -> int:
    """Copy each run's folder from the inputs that contributed to it into the output's artifacts folder: the
    run's own input first, then files only the others have (another input's folds)."""
    contributions = con.execute(
        "SELECT run_id, src, min(first) AS first FROM (SELECT run_id, src, 0 AS first FROM run_pick UNION ALL "
        "SELECT run_id, src, 1 FROM fold_pick) GROUP BY run_id, src ORDER BY run_id, first").fetchall()
    copied = 0
    for run_id, src, _ in contributions:
        source = Store(inputs[src]).artifacts_dir / run_id
        destination = target.artifacts_dir / run_id
        if not source.is_dir() or source.resolve() == destination.resolve():
            continue
        for file in sorted(p for p in source.rglob("*") if p.is_file()):
            to = destination / file.relative_to(source)
            if not to.exists():
                to.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(file, to)
                copied += 1
    return copied
