"""The data beside a leaderboard site: a Parquet export of the tables it was built from.

``data/`` holds every results-database table (:meth:`ferbench.store.Store.export`) plus three tables the
site computed: ``published_results`` (the published rows with their settings and reproduction switches),
``verification`` (each row's status and reproduction) and ``board_entries`` (each board's entries with
means, spreads, 95% intervals and shared ranks). ``data/README.md`` and the site's ``data.html`` say how
to query them with DuckDB.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable, Sequence

from .boards import Board
from .paper_results import PaperResult
from .store import Store
from .verification import Check

DATA_DIR = "data"


def _write_parquet(con: Any, path: Path, columns: Sequence[tuple[str, str]], rows: Iterable[Sequence[Any]]) -> None:
    """A Parquet file of ``rows`` with the given (name, DuckDB type) columns, written through ``con``."""
    con.execute("DROP TABLE IF EXISTS t")
    con.execute(f"CREATE TABLE t ({', '.join(f'{name} {kind}' for name, kind in columns)})")
    rows = [list(row) for row in rows]
    if rows:
        con.executemany(f"INSERT INTO t VALUES ({', '.join('?' * len(columns))})", rows)
    escaped = str(path).replace("'", "''")
    con.execute(f"COPY t TO '{escaped}' (FORMAT parquet)")


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def export_site_data(store: Store, out_dir: Path, rows: list[PaperResult], checks: list[Check],
                     boards: list[Board]) -> list[Path]:
    """Write the database's tables and the site's computed tables as Parquet under ``out_dir/data``."""
    import duckdb

    target = out_dir / DATA_DIR
    written = store.export(target, "parquet")
    con = duckdb.connect()
    try:
        _write_tables(con, target, rows, checks, boards)
    finally:
        con.close()
    (target / "README.md").write_text(DATA_README, encoding="utf-8")
    return written + [target / f"{name}.parquet" for name in ("published_results", "verification", "board_entries")]


def _write_tables(con: Any, target: Path, rows: list[PaperResult], checks: list[Check], boards: list[Board]) -> None:
    """The site's computed tables: published rows, their verification, the boards' entries."""
    _write_parquet(con, target / "published_results.parquet", [
        ("row_key", "VARCHAR"), ("method", "VARCHAR"), ("variant", "VARCHAR"), ("cited", "VARCHAR"),
        ("dataset", "VARCHAR"), ("protocol", "VARCHAR"), ("setting", "VARCHAR"), ("classes", "INTEGER"),
        ("training", "VARCHAR"), ("selection", "VARCHAR"), ("dataset_options", "JSON"), ("metric", "VARCHAR"),
        ("value", "DOUBLE"), ("source", "VARCHAR"), ("document", "VARCHAR"), ("source_table", "VARCHAR"),
        ("ferbench_method", "VARCHAR"), ("ferbench_preset", "VARCHAR"), ("switches", "JSON"), ("commands", "JSON"),
    ], ([row.key, row.name, row.variant, row.cited, row.dataset, row.protocol, row.setting.name, row.setting.classes,
         row.setting.training, row.setting.selection, json.dumps(row.dataset_options), row.metric, row.value,
         row.source, row.document, row.table, row.method, row.preset,
         json.dumps(dict(row.reproduce.switches) if row.reproduce else {}), json.dumps(row.commands())]
        for row in rows))
    _write_parquet(con, target / "verification.parquet", [
        ("row_key", "VARCHAR"), ("status", "VARCHAR"), ("board", "VARCHAR"), ("config_hash", "VARCHAR"),
        ("runs", "JSON"), ("mean", "DOUBLE"), ("ci95_low", "DOUBLE"), ("ci95_high", "DOUBLE"),
        ("delta_points", "DOUBLE"), ("differences", "JSON"),
    ], ([check.paper.key, str(check.status), check.board.page if check.board else None,
         check.entry.config_hash if check.entry else None,
         json.dumps([run.run_id for run in check.entry.runs] if check.entry else []), _number(check.mean),
         _number(check.interval[0]) if check.interval else None, _number(check.interval[1]) if check.interval else None,
         _number(check.delta), json.dumps(check.differences)] for check in checks))
    _write_parquet(con, target / "board_entries.parquet", [
        ("board", "VARCHAR"), ("dataset", "VARCHAR"), ("protocol", "VARCHAR"), ("manifest_hash", "VARCHAR"),
        ("classes", "JSON"), ("rank", "INTEGER"), ("tied", "BOOLEAN"), ("method", "VARCHAR"), ("preset", "VARCHAR"),
        ("config_hash", "VARCHAR"), ("runs", "JSON"), ("metric", "VARCHAR"), ("mean", "DOUBLE"), ("seed_std", "DOUBLE"),
        ("fold_std", "DOUBLE"), ("seeds", "INTEGER"), ("folds", "INTEGER"), ("ci95_low", "DOUBLE"), ("ci95_high", "DOUBLE"),
    ], ([board.page, board.dataset, board.protocol, board.manifest_hash, json.dumps(list(board.classes)), entry.rank,
         entry.tied, entry.method, entry.preset, entry.config_hash, json.dumps([run.run_id for run in entry.runs]),
         name, _number(stats["mean"]), _number(stats["seed_std"]), _number(stats["fold_std"]), stats["seeds"],
         stats["folds"], _number(entry.intervals.get(name, (None, None))[0]),
         _number(entry.intervals.get(name, (None, None))[1])]
        for board in boards for entry in board.entries for name, stats in entry.stats.items()))


DATA_README = """# The data behind this leaderboard

Every table this site was built from, as Parquet: the results database (`runs`, `folds`, `fold_metrics`,
`predictions`, `curves`, `manifests`, `artifacts`, `pretrain_images`) and what the site computed from it
(`published_results`, `verification`, `board_entries`). Query them in place with DuckDB
(`pip install duckdb`, or the `duckdb` command-line tool), from this folder:

```sql
-- each run's mean test accuracy over its folds
SELECT r.method, r.preset, r.dataset, r.seed, avg(m.value) AS accuracy
FROM 'runs.parquet' r JOIN 'fold_metrics.parquet' m USING (run_id)
WHERE m.metric = 'accuracy' GROUP BY ALL ORDER BY accuracy DESC;

-- recompute a fold's accuracy from the stored per-sample predictions
SELECT run_id, fold, avg((label = prediction)::INT) AS accuracy, count(*) AS samples
FROM 'predictions.parquet' GROUP BY run_id, fold ORDER BY run_id, fold;

-- published numbers, their verification status and ferbench's reproduction
SELECT p.method, p.variant, p.dataset, p.source_table, p.value, v.status, v.mean, v.ci95_low, v.ci95_high
FROM 'published_results.parquet' p JOIN 'verification.parquet' v USING (row_key)
ORDER BY v.status, p.dataset;

-- a board's ranking with 95% bootstrap intervals (percent for accuracy-like metrics is value * 100)
SELECT board, rank, tied, method, preset, mean, ci95_low, ci95_high
FROM 'board_entries.parquet' WHERE metric = 'accuracy' ORDER BY board, rank;
```

In Python: `import duckdb; duckdb.sql("SELECT * FROM 'runs.parquet'").df()`. Scores are fractions in
`fold_metrics`, `board_entries` and `predictions`, percent in `published_results` and `verification`.
"""
