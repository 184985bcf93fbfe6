"""Protocols: fold structure, subject independence, validation carving and stable manifest hashes."""
from __future__ import annotations

import numpy as np
import pytest

from ferbench.data import FERData
from ferbench.errors import DataError
from ferbench.protocols import build_manifest
from ferbench.specs import ProtocolSpec


def make_data(n: int = 300, subjects: int = 30, seed: int = 0) -> FERData:
    rng = np.random.default_rng(seed)
    return FERData(classes=tuple("abcd"), ids=[f"s{i:04d}" for i in range(n)], labels=rng.integers(0, 4, n),
                   load_pixels=lambda size: {}, subjects=rng.integers(0, subjects, n),
                   split=np.where(np.arange(n) % 4 == 0, "test", "train"))


def parts(manifest, fold: int) -> tuple[set, set, set]:
    f = manifest.folds[fold]
    return set(f.train.tolist()), set(f.val.tolist()), set(f.test.tolist())


def test_official_split() -> None:
    data = make_data()
    manifest = build_manifest(data, "toy", ProtocolSpec("official", "official"))
    train, val, test = parts(manifest, 0)
    assert test == set(np.flatnonzero(data.split == "test").tolist()) and not val
    assert train | test == set(range(len(data)))


def test_stratified_kfold_partitions_every_sample_once() -> None:
    data = make_data()
    manifest = build_manifest(data, "toy", ProtocolSpec("k5", "kfold", folds=5))
    tests = [parts(manifest, k)[2] for k in range(5)]
    assert sorted(i for t in tests for i in t) == list(range(len(data)))
    assert all(abs(len(t) - 60) <= 2 for t in tests)
    for k in range(5):  # class proportions follow the whole set's
        share = np.bincount(data.labels[list(tests[k])], minlength=4) / len(tests[k])
        assert np.allclose(share, np.bincount(data.labels, minlength=4) / len(data), atol=0.05)


def test_subject_kfold_never_puts_a_subject_on_both_sides() -> None:
    data = make_data()
    manifest = build_manifest(data, "toy", ProtocolSpec("s5", "subject_kfold", folds=5), val_fraction=0.2)
    seen_test_subjects = []
    for k in range(5):
        train, val, test = parts(manifest, k)
        subjects = {part: set(data.subjects[list(rows)].tolist()) for part, rows in
                    (("train", train), ("val", val), ("test", test))}
        assert not subjects["train"] & subjects["test"]
        assert not subjects["val"] & subjects["test"] and not subjects["val"] & subjects["train"]
        assert val, "a validation part is carved when asked"
        seen_test_subjects.append(subjects["test"])
    assert set().union(*seen_test_subjects) == set(data.subjects.tolist())


def test_repeated_split_is_subject_independent_with_the_asked_fraction() -> None:
    data = make_data()
    manifest = build_manifest(data, "toy", ProtocolSpec("r", "repeated_split", test_fraction=0.4, repeats=3))
    assert len(manifest.folds) == 3
    test_sets = []
    for k in range(3):
        train, _, test = parts(manifest, k)
        test_subjects = set(data.subjects[list(test)].tolist())
        assert len(test_subjects) == 12 and not test_subjects & set(data.subjects[list(train)].tolist())
        test_sets.append(frozenset(test))
    assert len(set(test_sets)) == 3, "each repeat draws a new split"


def test_manifest_hash_is_stable_and_sensitive() -> None:
    spec = ProtocolSpec("k5", "kfold", folds=5)
    first = build_manifest(make_data(), "toy", spec).hash
    assert first == build_manifest(make_data(), "toy", spec).hash
    assert first != build_manifest(make_data(), "toy", ProtocolSpec("k5", "kfold", folds=5, seed=1)).hash
    assert first != build_manifest(make_data(), "toy", spec, val_fraction=0.1).hash


def test_subject_protocol_without_subjects_is_a_clear_error() -> None:
    data = make_data()
    data.subjects = None
    with pytest.raises(DataError, match="no subject ids"):
        build_manifest(data, "toy", ProtocolSpec("s5", "subject_kfold", folds=5))


def test_predefined_folds_follow_the_published_assignment() -> None:
    data = make_data()
    data.fold = np.asarray(data.subjects) % 3
    manifest = build_manifest(data, "toy", ProtocolSpec("published", "predefined", folds=3))
    for k, fold in enumerate(manifest.folds):
        assert set(data.fold[fold.test].tolist()) == {k} and k not in set(data.fold[fold.train].tolist())
        assert len(fold.train) + len(fold.test) == len(data)
    data.fold = None
    with pytest.raises(DataError, match="published fold numbers"):
        build_manifest(data, "toy", ProtocolSpec("published", "predefined", folds=3))


def test_repeated_subject_kfold_draws_subjects_per_repeat() -> None:
    data = make_data(n=400, subjects=40)
    spec = ProtocolSpec("lit", "repeated_subject_kfold", folds=5, repeats=3, subject_subset=20)
    manifest = build_manifest(data, "toy", spec)
    assert len(manifest.folds) == spec.num_folds == 15
    draws = []
    for repeat in range(3):
        folds = manifest.folds[repeat * 5:(repeat + 1) * 5]
        tested = [set(data.subjects[f.test].tolist()) for f in folds]
        drawn = set().union(*tested)
        assert len(drawn) == 20 and sum(len(t) for t in tested) == 20  # each drawn subject tested once
        for fold, test_subjects in zip(folds, tested):
            assert not test_subjects & set(data.subjects[fold.train].tolist())
            assert set(data.subjects[fold.train].tolist()) | test_subjects == drawn
        draws.append(frozenset(drawn))
    assert len(set(draws)) == 3
