"""Verification of published numbers: was a row reproduced, and how close did ferbench's runs come?

Per published row (:mod:`ferbench.paper_results`) the status is one of :class:`Verification`. A row is
checked against the entries of its reproducing method and preset on the boards that hold its setting;
the entry whose config differs least from the row's switches (then the one with most seeds) is its
reproduction. Without differing switches the row is *reproduced* when its number lies inside the
entry's 95% bootstrap interval (:mod:`ferbench.bootstrap`), else *below* (ferbench's interval lies below
the paper's number) or *above*; with differences (e.g. ferbench took the final epoch, the paper the best
on test) it is *setting differs*. The difference in points is given in every case with a reproduction.

Switches compared: the row's own, plus -- for each switch another row of the same method and preset
sets -- the preset's value, so that e.g. a run with MAE weights does not count as a reproduction of the
supervised row whose only difference is ``model.weights`` (:func:`compare_keys`).
"""
from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Mapping

from .boards import Board, Entry, switch_differences
from .paper_results import PaperResult
from .settings import StrEnum


class Verification(StrEnum):
    """Whether a published row was reproduced by ferbench's runs."""

    NO_METHOD = "no ferbench method"  # no ferbench method reproduces the row (e.g. a cited work)
    NOT_INSTALLED = "method not installed"  # its method (or pre-trainer) is not in this installation
    NOT_RUN = "not run"
    SETTING_DIFFERS = "setting differs"
    REPRODUCED = "reproduced"  # the paper's number lies inside the 95% interval of ferbench's runs
    BELOW = "below"  # ferbench's runs score below the paper (the whole interval)
    ABOVE = "above"

    @property
    def css(self) -> str:
        return "st-" + self.value.replace(" ", "-")


@dataclass
class Check:
    """A published row's verification: its status and, where there is one, the entry that reproduces it."""

    paper: PaperResult
    status: Verification
    board: Board | None = None
    entry: Entry | None = None
    differences: list[str] = field(default_factory=list)

    @property
    def mean(self) -> float | None:
        """The reproduction's mean score, in percent."""
        stats = self.entry.stats.get(self.paper.metric) if self.entry else None
        return 100 * stats["mean"] if stats and stats.get("seeds") else None

    @property
    def interval(self) -> tuple[float, float] | None:
        """The reproduction's 95% interval, in percent."""
        found = self.entry.intervals.get(self.paper.metric) if self.entry else None
        return (100 * found[0], 100 * found[1]) if found and all(map(math.isfinite, found)) else None

    @property
    def delta(self) -> float | None:
        """Reproduced minus published, in points."""
        return None if self.mean is None else self.mean - self.paper.value


PresetValues = Callable[[str, str, str], Mapping[str, Any] | None]


def compare_keys(rows: Iterable[PaperResult], preset_values: PresetValues) -> list[PaperResult]:
    """The rows with ``compared`` set: their own switches plus, for every switch set by another row of
    the same method and preset, the preset's value of it (``preset_values(method, preset, dataset)`` gives
    a preset's flat settings, None for a method that is not installed; keys it lacks are not compared)."""
    rows = list(rows)
    keys: dict[tuple[str, str], set[str]] = defaultdict(set)
    for row in rows:
        if row.reproduce:
            keys[(row.method, row.preset)].update(row.reproduce.switches)
    result = []
    for row in rows:
        if not row.reproduce:
            result.append(row)
            continue
        preset = preset_values(row.method, row.preset, row.dataset) or {}
        compared = {key: preset[key] for key in sorted(keys[(row.method, row.preset)]) if key in preset}
        result.append(replace(row, compared={**compared, **row.reproduce.switches}))
    return result


def verify(rows: Iterable[PaperResult], boards: Iterable[Board], installed: Iterable[str]) -> list[Check]:
    """The verification of every row against the boards' entries (``installed``: the registered methods)."""
    boards, installed = list(boards), set(installed)
    holding: dict[str, list[Board]] = defaultdict(list)
    for board in boards:
        for paper in board.papers:
            holding[paper.key].append(board)
    return [check_row(row, holding.get(row.key, []), installed) for row in rows]


def check_row(row: PaperResult, boards: list[Board], installed: set[str]) -> Check:
    """The verification of one row against the entries of ``boards`` (those that hold its setting)."""
    if row.reproduce is None:
        return Check(row, Verification.NO_METHOD)
    candidates = [(board, entry, switch_differences(entry, row)) for board in boards for entry in board.entries
                  if (entry.method, entry.preset) == (row.method, row.preset)]
    if not candidates:
        needed = {row.method} | ({row.reproduce.pretrain.method} if row.reproduce.pretrain else set())
        return Check(row, Verification.NOT_RUN if needed <= installed else Verification.NOT_INSTALLED)
    board, entry, differences = min(candidates, key=lambda c: (len(c[2]), -len(c[1].seeds), -_mean(c[1], row)))
    return Check(row, judge(entry, row, differences), board, entry, differences)


def judge(entry: Entry, row: PaperResult, differences: list[str]) -> Verification:
    """The status of ``entry`` as the reproduction of ``row``."""
    if differences:
        return Verification.SETTING_DIFFERS
    found = entry.intervals.get(row.metric)
    mean = _mean(entry, row)
    low, high = (100 * found[0], 100 * found[1]) if found and all(map(math.isfinite, found)) else (mean, mean)
    if not math.isfinite(low):
        return Verification.NOT_RUN
    if low <= row.value <= high:
        return Verification.REPRODUCED
    return Verification.BELOW if high < row.value else Verification.ABOVE


def _mean(entry: Entry, row: PaperResult) -> float:
    stats = entry.stats.get(row.metric) or {}
    return 100 * stats["mean"] if stats.get("seeds") else -math.inf


def setting_key(row: PaperResult) -> tuple[str, str, int]:
    """The test setting a row is published on, for grouping rows that no board holds."""
    return (row.dataset, row.protocol, row.setting.classes)


def setting_label(key: tuple[str, str, int]) -> str:
    dataset, protocol, classes = key
    return f"{dataset} / {protocol or 'protocol not stated'}, {classes} classes"


def option_text(options: Mapping[str, Any]) -> str:
    return ", ".join(f"{key}={json.dumps(value)}" for key, value in options.items())
