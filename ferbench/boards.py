"""Boards: the runs scored on one test set, their ranked entries and the published rows they hold.

A board holds the runs of one dataset, protocol, split manifest (hash) and class list: only those were
scored on the same test samples with the same labels' classes. Boards of one dataset are titled by what
sets them apart (class count and the dataset options that differ, in the dataset's words, e.g. "8 classes,
majority rule, train + valid"; the manifest hash where nothing else does). An entry is the completed runs
of one (method, preset, config hash) on a board, over seeds; its scores keep the spread over seeds and
over folds apart (:func:`ferbench.metrics.seed_fold_stats`). A published row
(:mod:`ferbench.paper_results`) is attached to the boards that hold its setting, and to the entries of
its method and preset there, with the switches in which they differ from the paper.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Mapping

from .config import flatten
from .metrics import seed_fold_stats
from .paper_results import PaperResult, switch_matches
from .settings import RANKED_METRICS, RunKind, Selection, Status

#: option -> value -> words, per dataset (``DatasetSpec.option_labels``), for board titles.
OptionLabels = Mapping[str, Mapping[str, Mapping[Any, str]]]

#: The badge of a run whose model never left one class (e.g. the majority class) on some fold: untrained or
#: collapsed, whatever its accuracy says.
SINGLE_CLASS_FLAG = "predicts one class for every test sample"

_PLAIN_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,79}")


def safe_name(text: Any) -> str:
    """A file-name-safe form of ``text``: kept when already plain lowercase, else cleaned and suffixed
    with a hash so that distinct names never share a file (also on case-insensitive file systems).
    The result never contains ``--``, which separates dataset and protocol in page names."""
    text = str(text)
    if _PLAIN_NAME.fullmatch(text) and "--" not in text and not text.endswith("."):
        return text
    cleaned = re.sub(r"[^a-z0-9_.]+", "-", text.lower()).strip("-.")[:60].strip("-.")
    return f"{cleaned or 'x'}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"


@dataclass
class RunView:
    """A ``runs`` row with its folds, per-fold scalar metrics and curves."""

    row: dict[str, Any]
    folds: dict[int, dict[str, Any]] = field(default_factory=dict)
    metrics: dict[int, dict[str, float]] = field(default_factory=dict)
    curves: dict[str, dict[int, list[tuple[int, float]]]] = field(default_factory=dict)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    #: folds whose model predicted one class for every test sample (of a test part holding several classes)
    single_class_folds: list[int] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return str(self.row["run_id"])

    @property
    def page(self) -> str:
        """Path of the run page relative to the site root."""
        return f"runs/{safe_name(self.run_id)}.html"

    @property
    def samples_page(self) -> str:
        """Path of the run's per-sample browser relative to the site root."""
        return f"samples/{safe_name(self.run_id)}.html"

    @property
    def test_selected(self) -> bool:
        return bool(self.row.get("selected_on_test")) or self.row.get("selection_rule") == Selection.TEST

    def values(self, metric: str) -> list[float]:
        return [m[metric] for _, m in sorted(self.metrics.items()) if metric in m]

    @property
    def kind(self) -> str:
        """train, eval or pretrain (runs recorded before kinds existed are training runs)."""
        return str(self.row.get("kind") or RunKind.TRAIN)

    @property
    def flags(self) -> list[tuple[str, str]]:
        """(css class, text) badges for what makes this run's scores less comparable."""
        flags = [("warn", "selected on test")] if self.test_selected else []
        if self.kind == RunKind.EVAL:
            flags.append(("note", "evaluation only"))
        if (self.row.get("flags") or {}).get("test_images_in_pretraining"):
            flags.append(("warn", "pre-training saw test images"))
        if self.single_class_folds:
            flags.append(("warn", SINGLE_CLASS_FLAG))
        return flags

    @cached_property
    def settings(self) -> dict[str, Any]:
        """The run's config as dotted keys (empty when it has none)."""
        config = self.row.get("config")
        return flatten(config) if isinstance(config, Mapping) else {}

    @property
    def dataset_options(self) -> dict[str, Any]:
        return {key.split(".", 1)[1]: value for key, value in self.settings.items() if key.startswith("dataset.")}


@dataclass
class Entry:
    """Completed runs of one (method, preset, config hash) on one board, over seeds."""

    method: str
    preset: str
    config_hash: str
    runs: list[RunView]
    expected_folds: int | None
    paper: PaperResult | None = None
    paper_differences: list[str] = field(default_factory=list)  # "key=value (paper: value)" per switch
    #: per metric, the 95% bootstrap interval of the mean (fractions; :mod:`ferbench.bootstrap`)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    rank: int = 0  # shared rank: entries whose paired difference is not significant share one
    tied: bool = False  # shares the rank of the entry above
    rank_difference: tuple[float, float] | None = None  # 95% interval of (entry above - this), fractions

    @cached_property
    def stats(self) -> dict[str, dict[str, float]]:
        """Per scalar metric (the ranked ones and every other the runs recorded, plugins' included): the
        mean over runs of their fold means, the std of those over seeds and the runs' mean std over folds
        (:func:`ferbench.metrics.seed_fold_stats`)."""
        return {name: seed_fold_stats(run.values(name) for run in self.runs) for name in metric_names(self.runs)}

    @property
    def seeds(self) -> list[Any]:
        return sorted({run.row.get("seed") for run in self.runs}, key=str)

    @property
    def n_folds(self) -> int:
        return len({fold for run in self.runs for fold in run.metrics})

    @property
    def selection_rules(self) -> str:
        return ", ".join(sorted({str(run.row.get("selection_rule")) for run in self.runs}))

    @property
    def test_selected(self) -> bool:
        return any(run.test_selected for run in self.runs)

    @property
    def paper_delta(self) -> float | None:
        """Reproduced minus published, in points of the paper's metric."""
        if self.paper is None or not self.stats[self.paper.metric]["seeds"]:
            return None
        return 100 * self.stats[self.paper.metric]["mean"] - self.paper.value

    @property
    def flags(self) -> list[tuple[str, str]]:
        """(css class, text) badges for anything that makes the entry less comparable."""
        flags = sorted({flag for run in self.runs for flag in run.flags})
        if self.paper_differences:
            flags.append(("warn", "setting differs from the paper: " + "; ".join(self.paper_differences)))
        if self.expected_folds and any(len(run.metrics) < self.expected_folds for run in self.runs):
            flags.append(("note", f"partial folds (protocol has {self.expected_folds})"))
        if len(self.runs) > len(self.seeds):
            flags.append(("note", f"{len(self.runs)} runs for {len(self.seeds)} seeds"))
        return flags


@dataclass
class Board:
    """The runs scored on one test set: one dataset, protocol, split manifest and class list."""

    dataset: str
    protocol: str
    manifest_hash: str
    classes: tuple[str, ...]
    runs: list[RunView]
    entries: list[Entry]
    expected_folds: int | None
    variant: str = ""  # what sets the board apart from the dataset's other boards
    papers: list[PaperResult] = field(default_factory=list)  # published rows in this board's setting
    other_papers: list[tuple[PaperResult, str]] = field(default_factory=list)  # (row, why it is not shown)

    @property
    def key(self) -> str:
        """A short, stable hash of the test set (manifest and classes) that names the page."""
        text = json.dumps([self.manifest_hash, list(self.classes)])
        return hashlib.sha1(text.encode()).hexdigest()[:8]

    @property
    def page(self) -> str:
        return f"{safe_name(self.dataset)}--{safe_name(self.protocol)}--{self.key}.html"

    @property
    def title(self) -> str:
        return f"{self.dataset} / {self.protocol}"

    @property
    def extra_metrics(self) -> list[str]:
        """Scalar metrics its runs recorded beyond the ranked ones (e.g. a plugin's), sorted."""
        return [name for name in metric_names(self.runs) if name not in RANKED_METRICS]

    @property
    def unfinished(self) -> list[RunView]:
        return [run for run in self.runs if run.row.get("status") != Status.COMPLETED]

    @property
    def n_completed(self) -> int:
        return len(self.runs) - len(self.unfinished)

    def cell(self, method: str) -> dict[str, Any]:
        """The index cell of ``method``: its best entry (and rank) and its run counts."""
        ranked = [(rank, e) for rank, e in enumerate(self.entries, 1) if e.method == method]
        runs = [run for run in self.runs if run.row.get("method") == method]
        return {"rank": ranked[0][0] if ranked else None, "best": ranked[0][1] if ranked else None,
                "n_runs": len(runs), "n_completed": sum(run.row.get("status") == Status.COMPLETED for run in runs)}


def metric_names(runs: list[RunView]) -> list[str]:
    """The ranked metrics, then every other scalar metric the runs recorded, sorted."""
    found = {name for run in runs for metrics in run.metrics.values() for name in metrics}
    return list(RANKED_METRICS) + sorted(found - set(RANKED_METRICS))


def _ranking_key(entry: Entry) -> tuple[float, str]:
    mean = entry.stats[RANKED_METRICS[0]]["mean"]
    return (-mean if math.isfinite(mean) else math.inf, entry.method)


def _board_mismatch(paper: PaperResult, board: Board) -> str | None:
    """Why ``board`` does not hold ``paper``'s test setting (None when it does)."""
    if paper.dataset != board.dataset:
        return f"the paper's dataset is {paper.dataset}"
    if paper.protocol != board.protocol:
        return f"the paper's protocol is {paper.protocol}"
    if paper.setting.classes != len(board.classes):
        return f"{len(board.classes)} classes here, {paper.setting.classes} in the paper"
    for option, want in paper.dataset_options.items():
        have = sorted({json.dumps(run.dataset_options.get(option)) for run in board.runs})
        if have != [json.dumps(want)]:
            return f"dataset.{option}={'/'.join(have)} here, {json.dumps(want)} in the paper"
    return None


def switch_differences(entry: Entry, paper: PaperResult) -> list[str]:
    """The switches in which the entry's config differs from the published row's (``key=value (paper:
    value)``); a placeholder of the row (``run:<pretrain>``) matches any value of its form."""
    settings = entry.runs[0].settings
    return [f"{key}={json.dumps(settings.get(key))} (paper: {json.dumps(want)})"
            for key, want in paper.run_switches.items() if not switch_matches(settings.get(key), want)]


def _paper_for(entry: Entry, papers: list[PaperResult]) -> tuple[PaperResult | None, list[str]]:
    """The board's published row of the entry's method and preset that differs least from its config (of
    rows that differ as much, the one with the fewest switches of its own: the preset as it is), and the
    differing switches (``key=value (paper: value)``)."""
    candidates = [(paper, switch_differences(entry, paper)) for paper in papers
                  if (paper.method, paper.preset) == (entry.method, entry.preset)]
    if not candidates:
        return None, []
    return min(candidates, key=lambda c: (len(c[1]), len(c[0].reproduce.switches) if c[0].reproduce else 0))


def _board_groups(runs: list[RunView]) -> dict[tuple[str, str, str, tuple[str, ...]], list[RunView]]:
    """Runs by test set: (dataset, protocol, manifest hash, class list)."""
    groups: dict[tuple[str, str, str, tuple[str, ...]], list[RunView]] = defaultdict(list)
    for run in runs:
        classes = tuple(str(c) for c in run.row.get("classes") or ())
        groups[(str(run.row.get("dataset")), str(run.row.get("protocol")), str(run.row.get("manifest_hash")),
                classes)].append(run)
    return groups


def build_boards(runs: list[RunView], fold_counts: Mapping[str, int], papers: list[PaperResult],
                 option_labels: OptionLabels) -> list[Board]:
    """Boards of ``runs`` (sorted by dataset, protocol, manifest, classes) with ranked entries, the
    published rows each holds and their titles; ``fold_counts`` maps manifest hashes to fold counts."""
    boards = []
    for (dataset, protocol, manifest_hash, classes), members in sorted(_board_groups(runs).items()):
        expected = fold_counts.get(manifest_hash) or None
        groups: dict[tuple[str, str, str], list[RunView]] = defaultdict(list)
        for run in members:
            if run.row.get("status") == Status.COMPLETED:
                groups[tuple(str(run.row.get(k)) for k in ("method", "preset", "config_hash"))].append(run)
        entries = [Entry(method, preset, config_hash, group, expected)
                   for (method, preset, config_hash), group in groups.items()]
        board = Board(dataset, protocol, manifest_hash, classes, members, sorted(entries, key=_ranking_key), expected)
        for paper in papers:
            why = _board_mismatch(paper, board)
            if why is None:
                board.papers.append(paper)
            elif paper.dataset == dataset:
                board.other_papers.append((paper, why))
        for entry in board.entries:
            entry.paper, entry.paper_differences = _paper_for(entry, board.papers)
        boards.append(board)
    _title_variants(boards, option_labels)
    return boards


# --- board titles ----------------------------------------------------------------------------------

def _option_words(option: str, values: list[Any], labels: Mapping[str, Mapping[Any, str]]) -> str:
    """The dataset's words for ``option``'s values (``option=value`` where it has none), ``/``-joined."""
    words = labels.get(option, {})
    return "/".join((words.get(value) if isinstance(value, (str, int, float)) else None)
                    or f"{option}={json.dumps(value)}" for value in values)


def _board_options(board: Board) -> dict[str, list[Any]]:
    """Each dataset option's distinct values over the board's runs (in JSON order)."""
    values: dict[str, dict[str, Any]] = defaultdict(dict)
    for run in board.runs:
        for option, value in run.dataset_options.items():
            values[option][json.dumps(value, sort_keys=True)] = value
    return {option: [found[key] for key in sorted(found)] for option, found in values.items()}


def _title_variants(boards: list[Board], option_labels: OptionLabels) -> None:
    """Set ``variant`` of each board: what differs between the boards of its dataset (class count,
    dataset options), and the manifest hash where that still leaves two alike."""
    by_dataset: dict[str, list[Board]] = defaultdict(list)
    for board in boards:
        by_dataset[board.dataset].append(board)
    for dataset, group in by_dataset.items():
        options = [_board_options(board) for board in group]
        differing = sorted(name for name in {n for o in options for n in o}
                           if len({json.dumps(o.get(name), sort_keys=True) for o in options}) > 1)
        several_class_lists = len({board.classes for board in group}) > 1
        for board, found in zip(group, options):
            parts = [_class_words(board, group)] if several_class_lists else []
            for option in differing:
                words = _option_words(option, found.get(option, [None]), option_labels.get(dataset, {}))
                if not any(words in part for part in parts):  # e.g. "7 classes" said by the class list
                    parts.append(words)
            board.variant = ", ".join(parts)
        alike: dict[tuple[str, str], list[Board]] = defaultdict(list)
        for board in group:
            alike[(board.protocol, board.variant)].append(board)
        for same in alike.values():
            for board in same if len(same) > 1 else ():
                board.variant = ", ".join(filter(None, [board.variant, f"split {board.manifest_hash[:8]}"]))


def _class_words(board: Board, group: list[Board]) -> str:
    """``K classes``, naming the classes of the dataset's other boards that this one lacks (up to 3)."""
    missing = list(dict.fromkeys(c for other in group for c in other.classes if c not in board.classes))
    words = f"{len(board.classes)} classes"
    return f"{words} without {', '.join(missing)}" if 0 < len(missing) <= 3 else words
