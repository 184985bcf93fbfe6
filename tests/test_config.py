"""Config building: presets, files and --set overrides are merged and validated."""
from __future__ import annotations

from pathlib import Path

import pytest

from ferbench.config import build_config, config_hash, parse_assignment, read_config_file
from ferbench.errors import UsageError

PRESET = {"model": {"depth": 4, "pool": "avg"}, "optim": {"lr": 1e-3}, "train": {"epochs": 3}}
CHOICES = {"model.pool": ("avg", "token")}


def test_layers_merge_in_order(tmp_path: Path) -> None:
    config = build_config(PRESET, {"samples": 10}, {"train": {"epochs": 7}},
                          [parse_assignment("optim.lr=5e-4"), parse_assignment("train.epochs=9")], CHOICES)
    assert config["train"]["epochs"] == 9  # --set beats the file, which beats the preset
    assert config["optim"]["lr"] == pytest.approx(5e-4)  # YAML 1.1 would read 5e-4 as a string
    assert config["train"]["batch_size"] == 64  # engine default kept
    assert config["dataset"] == {"samples": 10}


@pytest.mark.parametrize(("assignment", "message"), [
    ("train.epoch=3", "unknown config key 'train.epoch'"),
    ("model.depth=deep", "expected an integer"),
    ("model.pool=max", "choose one of: avg, token"),
    ("train.amp=1", "expected true or false"),
    ("model=3", "is a section"),
])
def test_bad_overrides_are_refused_with_the_valid_choices(assignment: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        build_config(PRESET, {}, None, [parse_assignment(assignment)], CHOICES)


def test_unknown_key_lists_the_keys_of_its_section() -> None:
    with pytest.raises(UsageError) as info:
        build_config(PRESET, {}, None, [parse_assignment("model.width=3")], CHOICES)
    assert "model.depth" in str(info.value) and "model.pool" in str(info.value)


@pytest.mark.parametrize("text", ["noequals", "=3", "a..b=1", "train.epochs=[1,"])
def test_malformed_assignments(text: str) -> None:
    with pytest.raises(UsageError, match="malformed --set"):
        parse_assignment(text)


def test_config_files(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("train:\n  epochs: 4\n")
    assert read_config_file(good) == {"train": {"epochs": 4}}
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(UsageError, match="not valid YAML"):
        read_config_file(bad)
    with pytest.raises(UsageError, match="cannot read config file"):
        read_config_file(tmp_path / "missing.yaml")
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("3\n")
    with pytest.raises(UsageError, match="must hold a mapping"):
        read_config_file(scalar)


def test_config_hash_ignores_key_order_but_not_values() -> None:
    assert config_hash({"a": 1, "b": {"c": 2}}) == config_hash({"b": {"c": 2}, "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})
