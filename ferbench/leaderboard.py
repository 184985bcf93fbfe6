"""A static HTML leaderboard of the results database.

:func:`render_leaderboard` writes ``index.html`` (boards and published settings x methods, each cell
coloured by whether the paper's number was reproduced; a train-on-X / evaluate-on-Y matrix where
evaluation runs exist), one page per board -- the runs scored on one test set, ranked with shared ranks
where a paired bootstrap cannot tell neighbours apart (:mod:`ferbench.boards`, :mod:`ferbench.boardstats`)
-- with a CSV of it, one page per run and one per-sample browser per run (:mod:`ferbench.runpage`),
``published.html`` (every published row, its verification status and the command that reproduces it,
:mod:`ferbench.verification`), and ``data/`` with a Parquet export and ``data.html`` on querying it
(:mod:`ferbench.siteexport`). Pages use relative links only, no external resources, and one small script
(``ferbench.js``) for sorting, filtering, pinning and browsing; without JavaScript they are plain tables.
"""
from __future__ import annotations

import json
import math
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from . import __version__
from .boards import Board, Entry, RunView, build_boards
from .boardstats import annotate_board, board_csv, compare_data, facts, metric_columns
from .bootstrap import DRAWS, LEVEL, RunSamples, load_run_samples
from .config import flatten, method_tree
from .paper_results import PaperResult, load_paper_results  # noqa: F401 - the CLI loads the rows from here
from .runpage import SAMPLE_PAGE_ROWS, SAMPLE_ROWS_CAP, run_context, sample_rows
from .settings import ACCURACY, RANKED_METRICS, RunKind, Status
from .specs import MetricSpec
from .siteexport import export_site_data
from .store import Store
from .verification import Check, Verification, compare_keys, judge, option_text, setting_key, setting_label, verify

STATIC_FILES = ("style.css", "ferbench.js")


# --- formatting ------------------------------------------------------------------------------------

def _finite(value: Any) -> bool:
    return isinstance(value, (int, float, np.floating, np.integer)) and math.isfinite(value)


def pct(value: Any) -> str:
    """A fraction as a percentage with two decimals (``—`` when missing)."""
    return f"{100 * value:.2f}" if _finite(value) else "—"


def pm(stats: Mapping[str, float]) -> str:
    """``mean ± std`` of fractions, in percent."""
    return f"{pct(stats['mean'])} ± {pct(stats['std'])}" if stats.get("n") else "—"


def _spec(name: str) -> MetricSpec:
    from .plugins import registry

    return registry().metric_spec(name)


def percent(name: str) -> bool:
    """Whether metric ``name`` is shown as a percentage (as its :class:`~ferbench.specs.MetricSpec` declares)."""
    return _spec(name).percent


def spread(stats: Mapping[str, Any], name: str = ACCURACY) -> str:
    """``mean ± std`` of :func:`~ferbench.metrics.seed_fold_stats` of metric ``name``, as it declares:
    the std over seeds where there are several seeds, else the std over folds."""
    if not stats.get("seeds"):
        return "—"
    std = stats["seed_std"] if stats["seeds"] > 1 else stats["fold_std"]
    mean = metric_value(stats["mean"], name)
    return f"{mean} ± {metric_value(std, name)}" if _finite(std) else mean


def spread_note(stats: Mapping[str, Any], name: str = ACCURACY) -> str:
    """What the ``±`` of :func:`spread` is, and the fold std where it is not that."""
    if stats.get("seeds", 0) > 1:
        folds = f"; folds ± {metric_value(stats['fold_std'], name)}" if _finite(stats["fold_std"]) else ""
        return f"sd over {stats['seeds']} seeds{folds}"
    return f"sd over {stats['folds']} folds" if _finite(stats.get("fold_std")) else ""


def metric_value(value: Any, name: str) -> str:
    """A metric value as its :class:`~ferbench.specs.MetricSpec` declares (percent, format)."""
    return _spec(name).format_value(value) if _finite(value) else "—"


def metric_pm(stats: Mapping[str, float], name: str) -> str:
    if not stats.get("n"):
        return "—"
    return f"{metric_value(stats['mean'], name)} ± {metric_value(stats['std'], name)}"


def ci(bounds: Any, name: str = ACCURACY) -> str:
    """A 95% interval ``[low, high]`` of a metric (empty when there is none)."""
    if not bounds or not all(_finite(b) for b in bounds):
        return ""
    return f"95% CI [{metric_value(bounds[0], name)}, {metric_value(bounds[1], name)}]"


def count(value: Any) -> str:
    """A large count in words: 85.8M, 5.7k."""
    if not _finite(value):
        return "—"
    for size, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.1f}{unit}"
    return f"{value:.0f}"


def when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if isinstance(value, datetime) else ("—" if value is None else str(value))


def json_script(data: Any) -> Markup:
    """JSON for a ``<script type="application/json">`` element: ``<``, ``>`` and ``&`` escaped, so no
    string in it can close the element or start markup."""
    text = json.dumps(data, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def _environment() -> Environment:
    env = Environment(loader=PackageLoader("ferbench", "templates"), autoescape=select_autoescape(["html"]),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(pct=pct, pm=pm, spread=spread, spread_note=spread_note, metric_value=metric_value,
                       metric_pm=metric_pm, when=when, ci=ci, count=count, json_script=json_script,
                       percent=percent)
    return env


# --- loading ---------------------------------------------------------------------------------------

def _load_runs(store: Store) -> tuple[list[RunView], dict[str, int]]:
    """All runs with their folds, completed folds' metrics and curves; folds per manifest hash."""
    runs = {row["run_id"]: RunView(row) for row in store.query("SELECT * FROM runs ORDER BY started_at, run_id")}
    for row in store.query("SELECT * FROM folds ORDER BY run_id, fold"):
        if row["run_id"] in runs:
            runs[row["run_id"]].folds[row["fold"]] = row
    for row in store.query("SELECT m.run_id, m.fold, m.metric, m.value FROM fold_metrics m JOIN folds f "
                           "ON m.run_id = f.run_id AND m.fold = f.fold WHERE f.status = 'completed' "
                           "ORDER BY m.run_id, m.fold, m.metric"):
        if row["run_id"] in runs:
            runs[row["run_id"]].metrics.setdefault(row["fold"], {})[row["metric"]] = row["value"]
    for row in store.query("SELECT run_id, fold, epoch, name, value FROM curves ORDER BY run_id, name, fold, epoch"):
        if row["run_id"] in runs:
            runs[row["run_id"]].curves.setdefault(row["name"], {}).setdefault(row["fold"], []).append(
                (row["epoch"], row["value"]))
    for row in store.query("SELECT * FROM artifacts ORDER BY run_id, fold, kind, name"):
        if row["run_id"] in runs:
            runs[row["run_id"]].artifacts.append(row)
    for row in store.query("SELECT run_id, fold FROM predictions GROUP BY run_id, fold "
                           "HAVING count(DISTINCT prediction) = 1 AND count(DISTINCT label) > 1 ORDER BY run_id, fold"):
        if row["run_id"] in runs:
            runs[row["run_id"]].single_class_folds.append(row["fold"])
    fold_counts = {row["manifest_hash"]: row["n"] for row in store.query(
        "SELECT manifest_hash, json_array_length(manifest, '$.folds') AS n FROM manifests")}
    return list(runs.values()), fold_counts


class _Installed:
    """What this installation registers: methods (with their presets) and the datasets' option words."""

    def __init__(self, needed: bool) -> None:
        from .plugins import registry

        reg = registry() if needed else None
        self.methods = dict(reg.methods) if reg else {}
        self.option_labels = {name: spec.option_labels for name, spec in reg.datasets.items()} if reg else {}

    def preset_values(self, method: str, preset: str, dataset: str) -> dict[str, Any] | None:
        spec = self.methods.get(method)
        if spec is None or preset not in spec.presets:
            return None
        return flatten(method_tree(spec.defaults, spec.presets[preset],
                                   spec.dataset_presets.get(preset, {}).get(dataset)))


# --- index -----------------------------------------------------------------------------------------

def _entry_status(entry: Entry) -> Verification | None:
    return judge(entry, entry.paper, entry.paper_differences) if entry.paper else None


def _best_row(rows: Iterable[PaperResult], checks: Mapping[str, Check]) -> tuple[PaperResult, Check] | None:
    """The method's own published row with the highest value (the number a reader compares with)."""
    own = sorted((row for row in rows if not row.cited), key=lambda row: -row.value)
    return (own[0], checks[own[0].key]) if own else None


def _index_rows(boards: list[Board], rows: list[PaperResult], checks: Mapping[str, Check],
                methods: list[str]) -> list[dict[str, Any]]:
    """Rows of the index matrix: each board, then each published setting no board holds."""
    result = []
    for board in boards:
        cells = {}
        for method in methods:
            cell = board.cell(method)
            entry = cell["best"]
            published = [paper for paper in board.papers if paper.method == method]
            if entry is not None:
                status = _entry_status(entry)
                cells[method] = {"entry": entry, "status": status, "paper": entry.paper, **cell}
            elif published:
                paper, check = _best_row(published, checks) or (None, None)
                cells[method] = {"entry": None, "paper": paper, "status": check.status if check else None, **cell}
            else:
                cells[method] = {"entry": None, "paper": None, "status": None, **cell}
        result.append({"board": board, "cells": cells, "n_published": len(board.papers)})
    held = {paper.key for board in boards for paper in board.papers}
    groups: dict[tuple[str, str, int], list[PaperResult]] = defaultdict(list)
    for row in rows:
        if row.key not in held:
            groups[setting_key(row)].append(row)
    for key, members in sorted(groups.items()):
        cells = {}
        for method in methods:
            found = _best_row([row for row in members if row.method == method], checks)
            cells[method] = {"entry": None, "paper": found[0] if found else None,
                             "status": found[1].status if found else None, "n_runs": 0}
        result.append({"board": None, "label": setting_label(key), "cells": cells, "n_published": len(members),
                       "anchor": members[0].key})
    return result


def _cross_dataset(runs: list[RunView], boards: list[Board]) -> dict[str, Any] | None:
    """Train on X, evaluate on Y: evaluation runs of another board's run's kept weights, by method and
    source board (columns: the boards evaluated on; the diagonal is the source runs' own score)."""
    from .weights import source_run

    board_of = {run.run_id: board for board in boards for run in board.runs}
    by_id = {run.run_id: run for run in runs}
    cells: dict[tuple[str, str], dict[str, list[RunView]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        ref = ((run.row.get("weights") or {}).get("eval.weights") or {}).get("ref") if run.kind == RunKind.EVAL else None
        source = by_id.get(source_run(ref) or "") if ref else None
        if source is None or run.run_id not in board_of or source.run_id not in board_of:
            continue
        if board_of[source.run_id].key == board_of[run.run_id].key or run.row.get("status") != Status.COMPLETED:
            continue
        row = (str(source.row.get("method")), board_of[source.run_id].key)
        cells[row][board_of[run.run_id].key].append(run)
        cells[row][board_of[source.run_id].key].append(source)
    if not cells:
        return None
    keyed = {board.key: board for board in boards}
    columns = sorted({key for targets in cells.values() for key in targets}, key=lambda k: keyed[k].page)

    def score(members: list[RunView]) -> dict[str, Any]:
        means = [float(np.mean(run.values(RANKED_METRICS[0]))) for run in members if run.values(RANKED_METRICS[0])]
        unique = list({run.run_id: run for run in members}.values())
        return {"mean": float(np.mean(means)) if means else math.nan, "runs": unique}

    rows = [{"method": method, "train": keyed[train],
             "cells": {column: score(targets[column]) if column in targets else None for column in columns}}
            for (method, train), targets in sorted(cells.items())]
    return {"columns": [keyed[column] for column in columns], "rows": rows}


# --- rendering -------------------------------------------------------------------------------------

class _Site:
    """The output folder and the Jinja environment pages are rendered with (``root`` leads back to the top)."""

    def __init__(self, store: Store, out_dir: Path, draws: int) -> None:
        self.out_dir, self.env = Path(out_dir), _environment()
        for folder in ("runs", "samples"):
            (self.out_dir / folder).mkdir(parents=True, exist_ok=True)
        self.common = {"version": __version__, "db_path": str(store.path), "level": int(LEVEL * 100), "draws": draws,
                       "generated": when(datetime.now().replace(microsecond=0))}

    def write(self, template: str, target: str, root: str = "", **context: Any) -> None:
        html = self.env.get_template(template).render(root=root, **self.common, **context)
        (self.out_dir / target).write_text(html, encoding="utf-8")

    def write_static(self) -> None:
        for name in STATIC_FILES:
            (self.out_dir / name).write_text(self.env.get_template(name).render(), encoding="utf-8")


def render_leaderboard(store: Store, out_dir: Path, paper_results: Iterable[PaperResult] | None = None,
                       draws: int = DRAWS) -> Path:
    """Write the static leaderboard of ``store`` into ``out_dir``; returns the path of ``index.html``.

    ``paper_results`` are the published rows (:func:`ferbench.paper_results.load_paper_results`) shown
    on the boards that hold their setting and verified against them. A database without runs renders an
    empty index; a missing one raises (a mistyped path must not look like an empty database).
    """
    runs, fold_counts = _load_runs(store)
    papers = list(paper_results or ())
    site = _Site(store, out_dir, draws)
    installed = _Installed(needed=bool(runs or papers))
    rows = compare_keys(papers, installed.preset_values)
    pretraining = [run for run in runs if run.kind == RunKind.PRETRAIN]
    scored = [run for run in runs if run.kind != RunKind.PRETRAIN]
    boards = build_boards(scored, fold_counts, rows, installed.option_labels)
    site.write_static()
    compare = _write_runs(site, store, boards, pretraining, draws)
    checks = verify(rows, boards, installed.methods)
    by_key = {check.paper.key: check for check in checks}
    _write_boards(site, boards, compare, by_key)
    methods = sorted({str(run.row.get("method")) for board in boards for run in board.runs}
                     | {row.method for row in rows if row.method})
    site.write("index.html", "index.html", boards=boards, methods=methods, n_runs=len(runs),
               n_pretraining=len(pretraining), matrix=_index_rows(boards, rows, by_key, methods),
               cross=_cross_dataset(scored, boards), n_published=len(rows), installed=set(installed.methods),
               statuses=list(Verification))
    site.write("published.html", "published.html", checks=checks, option_text=option_text, statuses=list(Verification))
    if pretraining:
        site.write("pretraining.html", "pretraining.html", runs=pretraining)
    export_site_data(store, site.out_dir, rows, checks, boards)
    site.write("data.html", "data.html", tables=sorted(p.name for p in (site.out_dir / "data").glob("*.parquet")))
    return site.out_dir / "index.html"


def _write_runs(site: _Site, store: Store, boards: list[Board], pretraining: list[RunView],
                draws: int) -> dict[str, dict[str, Any]]:
    """Annotate each board with its bootstrap statistics and write its runs' pages (and the pre-training
    runs'); returns each board's head-to-head comparison data."""
    cache = store.artifacts_dir / "cache" / "bootstrap"
    compare: dict[str, dict[str, Any]] = {}
    for board in boards:
        samples = {run.run_id: load_run_samples(store, run.run_id) for run in board.runs}
        annotate_board(board, samples, cache, draws)
        compare[board.key] = compare_data(board, samples)
        for run in board.runs:
            _write_run(site, store, run, board, samples[run.run_id])
    for run in pretraining:
        _write_run(site, store, run, None, RunSamples(run.run_id))
    return compare


def _write_boards(site: _Site, boards: list[Board], compare: dict[str, dict[str, Any]],
                  checks: dict[str, Check]) -> None:
    """Each board's page and its CSV."""
    for board in boards:
        columns = metric_columns(board)
        statuses = {i: str(_entry_status(entry) or "") for i, entry in enumerate(board.entries)}
        csv = board.page.replace(".html", ".csv")
        (site.out_dir / csv).write_text(board_csv(board, statuses, columns, percent), encoding="utf-8")
        site.write("dataset.html", board.page, board=board, metric_columns=columns, checks=checks,
                   facts=[facts(entry) for entry in board.entries], statuses=[_entry_status(e) for e in board.entries],
                   compare=compare[board.key], csv=csv, option_text=option_text)


def _write_run(site: _Site, store: Store, run: RunView, board: Board | None, samples: RunSamples) -> None:
    """The run page and, for a scored run, its per-sample browser."""
    site.write("run.html", run.page, "../", **run_context(store, run, board, samples, site.out_dir))
    if board is not None:
        site.write("samples.html", run.samples_page, "../", run=run, board=board, data=sample_rows(run, samples),
                   page_rows=SAMPLE_PAGE_ROWS, cap=SAMPLE_ROWS_CAP)
