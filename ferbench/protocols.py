"""Evaluation protocols as code: each turns a dataset into a split manifest with a stable hash.

A manifest lists, per fold, the sample ids of ``train``, ``val`` (possibly empty) and ``test``.
Ids are sorted inside each part, so the hash depends only on which samples go where.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from .data import FERData
from .errors import DataError
from .specs import ProtocolSpec


@dataclass(frozen=True)
class Fold:
    """Row indices of one fold's parts."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


@dataclass(frozen=True)
class Manifest:
    """The folds of a protocol applied to a dataset, and how the validation part was made."""

    dataset: str
    protocol: str
    folds: tuple[Fold, ...]
    val_rule: str
    sample_ids: np.ndarray

    def to_json(self) -> dict[str, Any]:
        """A canonical, JSON-ready description (sorted sample ids per part)."""
        def part(rows: np.ndarray) -> list[str]:
            return sorted(self.sample_ids[rows].tolist())
        return {
            "dataset": self.dataset,
            "protocol": self.protocol,
            "val_rule": self.val_rule,
            "folds": [{"train": part(f.train), "val": part(f.val), "test": part(f.test)} for f in self.folds],
        }

    @property
    def hash(self) -> str:
        """sha256 of the canonical JSON, shortened to 16 hex digits."""
        text = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _official(data: FERData) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    if data.split is None:
        raise DataError("this dataset has no official split column; pick a k-fold protocol")
    split = np.asarray(data.split)
    parts = [np.flatnonzero((split == name) & ~data.excluded) for name in ("train", "val", "test")]
    if not len(parts[0]) or not len(parts[2]):
        raise DataError("the official split needs both train and test samples")
    return [tuple(parts)]  # type: ignore[list-item]


def _kfold(data: FERData, spec: ProtocolSpec) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    rows = np.flatnonzero(~data.excluded)
    labels = data.labels[rows]
    if spec.kind == "subject_kfold":
        if data.subjects is None:
            raise DataError(f"protocol {spec.name!r} is subject-independent but the dataset has no subject ids")
        if len(np.unique(data.subjects[rows])) < spec.folds:
            raise DataError(f"protocol {spec.name!r} needs at least {spec.folds} subjects")
        splitter = StratifiedGroupKFold(n_splits=spec.folds, shuffle=True, random_state=spec.seed)
        splits = splitter.split(rows, labels, groups=data.subjects[rows])
    else:
        splitter = StratifiedKFold(n_splits=spec.folds, shuffle=True, random_state=spec.seed)
        splits = splitter.split(rows, labels)
    empty = np.empty(0, dtype=np.int64)
    return [(rows[np.sort(train)], empty, rows[np.sort(test)]) for train, test in splits]


def _predefined(data: FERData, spec: ProtocolSpec) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    if data.fold is None:
        raise DataError(f"protocol {spec.name!r} needs the dataset's published fold numbers, which it lacks")
    fold = np.asarray(data.fold)
    usable = ~data.excluded
    empty = np.empty(0, dtype=np.int64)
    return [(np.flatnonzero((fold != k) & usable), empty, np.flatnonzero((fold == k) & usable))
            for k in range(spec.folds)]


def _repeated_subject_kfold(data: FERData, spec: ProtocolSpec) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    if data.subjects is None:
        raise DataError(f"protocol {spec.name!r} draws subjects but the dataset has no subject ids")
    usable = ~data.excluded
    subjects = np.unique(data.subjects[usable])
    count = spec.subject_subset or len(subjects)
    if count > len(subjects) or count < spec.folds:
        raise DataError(f"protocol {spec.name!r} needs {max(count, spec.folds)} subjects; the dataset has "
                        f"{len(subjects)}")
    empty = np.empty(0, dtype=np.int64)
    folds = []
    for repeat in range(spec.repeats):
        chosen = np.random.default_rng([spec.seed, repeat]).permutation(subjects)[:count]
        for k in range(spec.folds):
            is_test = np.isin(data.subjects, chosen[k::spec.folds]) & usable
            is_train = np.isin(data.subjects, chosen) & usable & ~is_test
            folds.append((np.flatnonzero(is_train), empty, np.flatnonzero(is_test)))
    return folds


def _repeated_split(data: FERData, spec: ProtocolSpec) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    folds = []
    empty = np.empty(0, dtype=np.int64)
    usable = ~data.excluded
    for repeat in range(spec.repeats):
        rng = np.random.default_rng([spec.seed, repeat])
        if spec.group_by_subject:
            if data.subjects is None:
                raise DataError(f"protocol {spec.name!r} splits by subject but the dataset has no subject ids")
            subjects = np.unique(data.subjects)
            test_subjects = rng.permutation(subjects)[: int(round(spec.test_fraction * len(subjects)))]
            is_test = np.isin(data.subjects, test_subjects)
        else:
            is_test = np.zeros(len(data), dtype=bool)
            for label in np.unique(data.labels):
                members = np.flatnonzero(data.labels == label)
                is_test[rng.permutation(members)[: int(round(spec.test_fraction * len(members)))]] = True
        folds.append((np.flatnonzero(~is_test & usable), empty, np.flatnonzero(is_test & usable)))
    return folds


def carve_validation(data: FERData, train: np.ndarray, fraction: float, seed: int,
                     by_subject: bool) -> tuple[np.ndarray, np.ndarray]:
    """Split ``train`` rows into (train, val): stratified by class, or by whole subjects when asked."""
    rng = np.random.default_rng(seed)
    is_val = np.zeros(len(train), dtype=bool)
    if by_subject and data.subjects is not None:
        subjects = np.unique(data.subjects[train])
        chosen = rng.permutation(subjects)[: max(1, int(round(fraction * len(subjects))))]
        is_val = np.isin(data.subjects[train], chosen)
    else:
        labels = data.labels[train]
        for label in np.unique(labels):
            members = np.flatnonzero(labels == label)
            take = int(round(fraction * len(members)))
            is_val[rng.permutation(members)[:take]] = True
    return train[~is_val], train[is_val]


def build_manifest(data: FERData, dataset: str, spec: ProtocolSpec, val_fraction: float = 0.0) -> Manifest:
    """Apply ``spec`` to ``data``. With ``val_fraction`` > 0 each fold without an official validation
    part gets one carved from its training part (seeded by the protocol, so it is the same for every
    method and seed; by whole subjects when the dataset has subject ids and the protocol is not a
    sample-level k-fold, stratified by class otherwise)."""
    if spec.kind == "official":
        raw = _official(data)
    elif spec.kind in ("kfold", "subject_kfold"):
        raw = _kfold(data, spec)
    elif spec.kind == "repeated_split":
        raw = _repeated_split(data, spec)
    elif spec.kind == "predefined":
        raw = _predefined(data, spec)
    elif spec.kind == "repeated_subject_kfold":
        raw = _repeated_subject_kfold(data, spec)
    else:
        raise DataError(f"protocol {spec.name!r} has unknown kind {spec.kind!r}")
    by_subject = spec.kind != "kfold" and spec.group_by_subject and data.subjects is not None
    folds, rules = [], set()
    for index, (train, val, test) in enumerate(raw):
        if len(val):
            rules.add("official")
        elif val_fraction > 0:
            train, val = carve_validation(data, train, val_fraction, seed=spec.seed * 1000 + index,
                                          by_subject=by_subject)
            rules.add(f"carved {val_fraction:g} of train" + (" by subject" if by_subject else ", stratified"))
        folds.append(Fold(train=train, val=val, test=test))
    return Manifest(dataset=dataset, protocol=spec.name, folds=tuple(folds),
                    val_rule="; ".join(sorted(rules)) or "none", sample_ids=data.ids)
