"""Config building: presets, files and --set overrides are merged and validated."""
from __future__ import annotations

from pathlib import Path

import pytest

from ferbench.config import build_config, config_hash, method_tree, parse_assignment, read_config_file
from ferbench.constraints import Constraint
from ferbench.errors import UsageError
from ferbench.specs import MethodSpec

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


@pytest.mark.parametrize(("constraint", "value", "message"), [
    (Constraint(low=1, high=10), 0, r"invalid value 0 for k: expected an integer in \[1, 10\]"),
    (Constraint(low=0.0, low_open=True), 0.0, "expected a number > 0"),
    (Constraint(low=0.0, high=1.0, high_open=True), 1.0, r"in \[0, 1\)"),
    (Constraint(lengths=(3,)), [1.0, 2.0], "a list of 3 values"),
    (Constraint(low=0.0, lengths=(2,), ascending=True), [2.0, 1.0], "in ascending order"),
    (Constraint(low=0.0, lengths=(1, 3)), [-1.0], r"a list of 1 or 3 values, each >= 0"),
    (Constraint(pattern=r"[a-z]+", hint="a lower-case name"), "a/b", "expected a lower-case name"),
    (Constraint(low=1, divides="width"), 5, "it must divide width = 12; choose one of: 1, 2, 3, 4, 6, 12"),
])
def test_constraints_refuse_with_the_valid_range(constraint: Constraint, value: object, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        constraint.check("k", value, {"width": 12})


@pytest.mark.parametrize(("constraint", "value"), [
    (Constraint(low=1, high=10), 10), (Constraint(low=0.0, low_open=True), 1e-9), (Constraint(lengths=(3,)), [1, 2, 3]),
    (Constraint(low=0.0, lengths=(2,), ascending=True), [1.0, 1.0]), (Constraint(pattern=r"[a-z]+"), "vit"),
    (Constraint(low=1, divides="width"), 4), (Constraint(low=1, divides="absent"), 5),
])
def test_constraints_accept_values_in_range(constraint: Constraint, value: object) -> None:
    constraint.check("k", value, {"width": 12})


@pytest.mark.parametrize(("assignment", "message"), [
    ("optim.lr=nan", "expected a finite number"),
    ("optim.lr=1e309", "expected a finite number"),  # YAML 1.1 reads it as a string; as a float it is inf
    ("model.depth=.inf", "expected an integer"),
    ("train.epochs=0", r"expected an integer in \[1, 100000\]"),
    ("data.std=[0.2,0,0.2]", "each > 0"),
    ("data.mean=[1,2]", "a list of 3 values"),
    ("optim.milestones=[5.5]", "a list of integers like"),
    ("train.grad_clip=-1", "expected a number >= 0"),
])
def test_engine_constraints_refuse_junk(assignment: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        build_config(method_tree({}, PRESET), {}, None, [parse_assignment(assignment)], CHOICES)


def test_lists_take_their_defaults_element_type_and_method_constraints_apply() -> None:
    config = build_config(PRESET, {}, None, [parse_assignment("data.augment.scale=[1, 2]")], CHOICES)
    scale = config["data"]["augment"]["scale"]
    assert scale == [1.0, 2.0] and all(isinstance(value, float) for value in scale)
    with pytest.raises(UsageError, match="model.depth: expected an integer in"):
        build_config(PRESET, {}, None, [parse_assignment("model.depth=99")], CHOICES,
                     constraints={"model.depth": Constraint(low=1, high=12)})


def test_a_methods_constraint_replaces_the_engines_for_the_same_key() -> None:
    derived_lr = method_tree({}, {"optim": {"lr": 0.0, "blr": 1.5e-4}})  # lr 0: "derive it from blr"
    with pytest.raises(UsageError, match=r"optim.lr: expected a number in \(0, 10\]"):
        build_config(derived_lr, {})
    assert build_config(derived_lr, {}, constraints={"optim.lr": Constraint(low=0.0)})["optim"]["lr"] == 0.0


def test_nan_in_a_method_section_is_refused_too() -> None:
    with pytest.raises(UsageError, match="model.scale: expected a finite number"):
        build_config({"model": {"scale": 1.0}}, {}, {"model": {"scale": float("nan")}})


def test_every_installed_preset_builds_a_valid_config() -> None:
    """The declared constraints hold for every preset of every method, on synthfer and on each dataset
    a preset has overrides for."""
    from ferbench.plugins import registry

    reg = registry()
    for method in reg.methods.values():
        for preset, tree in method.presets.items():
            for name in {"synthfer", *method.dataset_presets.get(preset, {})} & set(reg.datasets):
                overrides = method.dataset_presets.get(preset, {}).get(name)
                build_config(method_tree(method.defaults, tree, overrides), reg.datasets[name].options, None, (),
                             method.choices, reg.losses, method.constraints)


@pytest.mark.parametrize(("presets", "defaults", "fragments"), [
    ({"tiny": {"train": {"epoch": 3}}, "paper": {}}, {},
     ["method 'm', preset 'tiny': unknown key train.epoch", "did you mean 'train.epochs'?"]),
    ({"tiny": {}, "paper": {"trian": {"epochs": 3}}}, {},
     ["preset 'paper': unknown section 'trian'", "did you mean 'train'?"]),
    ({"tiny": {"model": {"widht": 8}}, "paper": {}}, {"model": {"width": 64}},
     ["preset 'tiny': unknown key model.widht", "did you mean 'model.width'?"]),
    ({"tiny": {"model": {"width": 8}}, "paper": {"model": {"depth": 12}}}, {},
     ["unknown key model.width", "those all its presets set"]),
])
def test_preset_typos_are_refused_when_the_method_is_registered(presets: dict, defaults: dict,
                                                                 fragments: list[str]) -> None:
    with pytest.raises(UsageError) as error:
        MethodSpec("m", "pkg.model:M", presets, defaults=defaults)
    assert all(fragment in str(error.value) for fragment in fragments), str(error.value)


def test_preset_keys_a_method_defines_are_accepted() -> None:
    MethodSpec("m", "pkg.model:M", {"tiny": {"model": {"width": 8}, "loss": {"name": "focal", "gamma": 1.0}},
                                    "paper": {"model": {"width": 64, "extra": {"anything": 1}}}},
               defaults={"model": {"depth": 2, "extra": {}}, "mine": {"weight": 0.5}},
               dataset_presets={"paper": {"ferplus": {"model": {"depth": 3}, "mine": {"weight": 1.0}}}})
    with pytest.raises(UsageError, match="preset 'paper' for dataset 'ferplus': unknown key model.dept"):
        MethodSpec("m", "pkg.model:M", {"tiny": {}, "paper": {}}, defaults={"model": {"depth": 2}},
                   dataset_presets={"paper": {"ferplus": {"model": {"dept": 3}}}})


def test_a_preset_dataset_key_must_be_an_option_of_the_dataset() -> None:
    with pytest.raises(UsageError, match=r"preset sets dataset.sample, .*\(did you mean 'samples'\?\)"):
        build_config({**PRESET, "dataset": {"sample": 3}}, {"samples": 10})
