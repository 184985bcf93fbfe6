"""What a board page shows beyond the ranking itself: bootstrap intervals and shared ranks of its entries,
the facts of each entry (initialisation, size, speed, device), the data behind the head-to-head compare,
and the board as CSV.

The compare data holds, per entry, the per-class recall and the row-normalised confusion matrix pooled
over its runs and folds, and -- for boards of at most :data:`COMPARE_SAMPLE_CAP` test samples (fold x
sample) -- each sample's majority outcome over the entry's runs, so the page can list the samples one
entry gets right and the other wrong.
"""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from . import bootstrap
from .boards import Board, Entry, RunView
from .metrics import confusion_matrix
from .planning import weights_keys
from .settings import RANKED_METRICS, RunKind

COMPARE_SAMPLE_CAP = 20_000
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"  # one character per class index in the compare strings


def annotate_board(board: Board, samples: Mapping[str, bootstrap.RunSamples], cache_dir: Path | None,
                   draws: int = bootstrap.DRAWS) -> None:
    """Set each entry's 95% intervals and shared rank (ranked by :data:`RANKED_METRICS`' first)."""
    classes = len(board.classes)
    folds = sorted({fold for run in board.runs for fold in run.metrics})
    chosen = bootstrap.fold_choice(folds, board.key, draws) if folds else None
    per_entry: list[dict[str, np.ndarray]] = []
    for entry in board.entries:
        runs = [bootstrap.run_draws(samples[run.run_id], classes, board.manifest_hash, cache_dir, draws)
                for run in entry.runs if run.run_id in samples and samples[run.run_id].folds]
        found: dict[str, np.ndarray] = {}
        if runs and chosen is not None:
            key = f"{board.key}/{entry.method}/{entry.preset}/{entry.config_hash}"
            found = {name: bootstrap.entry_draws([run[name] for run in runs], folds, chosen, key)
                     for name in bootstrap.DRAW_METRICS}
        entry.intervals = {name: bootstrap.interval(values) for name, values in found.items()}
        per_entry.append(found)
    ranked = RANKED_METRICS[0]
    for entry, step in zip(board.entries, bootstrap.shared_ranks([found.get(ranked) for found in per_entry])):
        entry.rank, entry.tied, entry.rank_difference = step.rank, step.tied, step.difference


# --- entry facts ----------------------------------------------------------------------------------------

def initialisation(entry: Entry) -> str:
    """The weights the entry's runs started from (or were scored with), ``random`` for none."""
    refs: list[str] = []
    for run in entry.runs:
        config = run.row.get("config") if isinstance(run.row.get("config"), Mapping) else {}
        found = list(weights_keys(dict(config)).values())
        scored = (run.row.get("weights") or {}).get("eval.weights") if run.kind == RunKind.EVAL else None
        if isinstance(scored, Mapping) and scored.get("ref"):
            found.append(f"scored: {scored['ref']}")
        refs += [ref for ref in found if ref not in refs]
    return ", ".join(refs) or "random"


def _fold_mean(runs: list[RunView], value: Any) -> float | None:
    values = [v for run in runs for info in run.folds.values() if (v := value(info)) is not None and math.isfinite(v)]
    return float(np.mean(values)) if values else None


def facts(entry: Entry) -> dict[str, Any]:
    """Parameters, training and inference images/s (means over folds), devices and initialisation."""
    parameters = sorted({int(p) for run in entry.runs if (p := run.row.get("parameters"))})
    return {
        "initialisation": initialisation(entry),
        "parameters": parameters[-1] if parameters else None,
        "train_ips": _fold_mean(entry.runs, lambda info: info.get("images_per_second") or None),
        "infer_ips": _fold_mean(entry.runs, lambda info: (info.get("n_test") or 0) / info["eval_seconds"]
                                if info.get("eval_seconds") else None),
        "device": ", ".join(sorted({str(run.row.get("device")) for run in entry.runs})),
    }


# --- head-to-head compare -------------------------------------------------------------------------------

def compare_data(board: Board, samples: Mapping[str, bootstrap.RunSamples],
                 cap: int = COMPARE_SAMPLE_CAP) -> dict[str, Any]:
    """The JSON the board page's compare panel reads (see the module docstring)."""
    classes = list(board.classes)
    k = max(len(classes), 1)
    universe = sorted({(fold, sid) for entry in board.entries for run in entry.runs if run.run_id in samples
                       for fold, part in samples[run.run_id].folds.items() for sid in part.ids})
    per_sample = len(universe) <= cap and k <= len(_DIGITS)
    index = {key: i for i, key in enumerate(universe)} if per_sample else {}
    labels = ["-"] * len(universe) if per_sample else []
    entries = []
    for position, entry in enumerate(board.entries, 1):
        pooled = np.zeros((k, k), dtype=np.int64)
        votes = np.zeros((len(index), k), dtype=np.int64) if per_sample else None
        correct = np.zeros(len(index), dtype=np.int64)
        seen = np.zeros(len(index), dtype=np.int64)
        for run in entry.runs:
            for fold, part in (samples[run.run_id].folds.items() if run.run_id in samples else ()):
                pooled += confusion_matrix(np.clip(part.labels, 0, k - 1), np.clip(part.predictions, 0, k - 1), None, k)
                if votes is None:
                    continue
                rows = np.array([index[(fold, sid)] for sid in part.ids], dtype=np.int64)
                np.add.at(votes, (rows, np.clip(part.predictions, 0, k - 1)), 1)
                np.add.at(correct, rows, part.labels == part.predictions)
                np.add.at(seen, rows, 1)
                for row, label in zip(rows.tolist(), part.labels.tolist()):
                    labels[row] = _DIGITS[label] if 0 <= label < k else "-"
        support = pooled.sum(axis=1)
        item: dict[str, Any] = {
            "id": f"entry-{position}", "method": entry.method, "preset": entry.preset, "config": entry.config_hash,
            "recall": [float(pooled[i, i] / support[i]) if support[i] else None for i in range(k)],
            "confusion": [[float(c / support[i]) if support[i] else None for c in pooled[i]] for i in range(k)],
            "samples": entry.runs[0].samples_page if entry.runs else "",
        }
        if votes is not None:
            item["correct"] = "".join("-" if not s else ("1" if 2 * c >= s else "0") for c, s in zip(correct, seen))
            item["pred"] = "".join("-" if not s else _DIGITS[int(v.argmax())] for v, s in zip(votes, seen))
        entries.append(item)
    data: dict[str, Any] = {"classes": classes, "entries": entries, "cap": cap, "n_samples": len(universe)}
    if per_sample:
        data["samples"] = {"folds": [fold for fold, _ in universe], "ids": [sid for _, sid in universe],
                           "labels": "".join(labels)}
    return data


# --- CSV ------------------------------------------------------------------------------------------------

def board_csv(board: Board, statuses: Mapping[int, str], metric_names: list[str],
              percent: Callable[[str], bool]) -> str:
    """The board's entries as CSV: rank, entry facts, per metric mean/std/interval (times 100 where
    ``percent(metric)``), the published row and its verification status, the run ids."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    header = ["rank", "tied", "method", "preset", "config_hash", "initialisation", "seeds", "folds", "selection",
              "parameters", "train_images_per_s", "inference_images_per_s", "device"]
    for name in metric_names:
        header += [f"{name}_mean", f"{name}_seed_std", f"{name}_fold_std", f"{name}_ci95_low", f"{name}_ci95_high"]
    writer.writerow(header + ["paper_value", "paper_metric", "paper_source", "paper_table", "delta_points",
                              "verification", "runs"])
    for position, entry in enumerate(board.entries):
        info = facts(entry)
        row: list[Any] = [entry.rank, entry.tied, entry.method, entry.preset, entry.config_hash, info["initialisation"],
                          len(entry.seeds), entry.n_folds, entry.selection_rules, info["parameters"] or "",
                          _number(info["train_ips"]), _number(info["infer_ips"]), info["device"]]
        for name in metric_names:
            scale = 100 if percent(name) else 1
            stats = entry.stats.get(name, {})
            low, high = entry.intervals.get(name, (math.nan, math.nan))
            row += [_number(scale * stats.get("mean", math.nan)), _number(scale * stats.get("seed_std", math.nan)),
                    _number(scale * stats.get("fold_std", math.nan)), _number(scale * low), _number(scale * high)]
        paper = entry.paper
        row += ([paper.value, paper.metric, paper.source, paper.table, _number(entry.paper_delta)] if paper
                else ["", "", "", "", ""])
        writer.writerow(row + [statuses.get(position, ""), " ".join(run.run_id for run in entry.runs)])
    return out.getvalue()


def _number(value: Any) -> str:
    return "" if value is None or not math.isfinite(value) else f"{value:.4f}"


def metric_columns(board: Board) -> list[str]:
    """The scalar metrics shown as columns: the ranked ones, then any other the board's runs recorded."""
    return list(RANKED_METRICS) + board.extra_metrics
