"""The published-results file: the shipped rows against the source documents, their reproduction configs, and
one-line errors on malformed entries."""
from __future__ import annotations

import copy
import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

from conftest import assert_one_line_error, ferbench
from ferbench.errors import UsageError
from ferbench.paper_results import SHIPPED, load_paper_results, parse_paper_results, switch_matches

REPOSITORY_FILE = Path(__file__).parents[1] / "leaderboards" / "published-results.yaml"
#: The source documents: shared/seeds/ beside the repository (or beside the folder of worktrees).
SEEDS = next((path for path in (Path(__file__).parents[i] / "shared" / "seeds" for i in (2, 3)) if path.is_dir()),
             Path("shared/seeds"))
ROW = {"method": "ViT baseline", "variant": "ViT-B/16", "values": [88.91],
       "reproduce": {"method": "vit-baseline", "preset": "paper"}}
SETTING = {"dataset": "ferplus", "protocol": "official", "classes": 8, "training": "train + valid",
           "selection": "highest test accuracy over epochs", "options": {"classes": 8, "train_on_valid": True},
           "switches": {"train.selection": "test"}}


def _file(**table: object) -> dict:
    """A valid one-row file with ``table``'s keys replaced."""
    return {"version": 2, "sources": {"pfvit": {"title": "PF-ViT", "document": "003.txt"}},
            "settings": {"fp": copy.deepcopy(SETTING)},
            "tables": [{"source": "pfvit", "table": "Table 3", "metric": "accuracy", "columns": ["fp"],
                        "rows": [copy.deepcopy(ROW)], **table}]}


def test_one_source_of_truth() -> None:
    assert SHIPPED.resolve() == REPOSITORY_FILE.resolve()  # the package reads the repository's file


def test_shipped_rows_carry_the_papers_numbers_and_settings() -> None:
    rows = load_paper_results()
    by_table = Counter((row.document[:3], row.table) for row in rows)
    # every printed number (own + quoted from other works) of PF-ViT (003) Tables 2-6 and B1, MIMIC (000)
    # Tables I-V, the poster (002) Tables 1-4 and the thesis (004) Tables 3.3-3.9 (3.8 holds no numbers)
    assert by_table == {("003", "Table 2"): 9, ("003", "Table 3"): 18, ("003", "Table 4"): 9, ("003", "Table 5"): 8,
                        ("003", "Table B1"): 9, ("003", "Table 6"): 16 + 22, ("000", "Table I"): 6 + 39,
                        ("000", "Table II"): 18, ("000", "Table III"): 9, ("000", "Table IV"): 6, ("000", "Table V"): 6,
                        ("002", "Table 1"): 10, ("002", "Table 2"): 5, ("002", "Table 3"): 6, ("002", "Table 4"): 2 + 11,
                        ("004", "Table 3.3"): 2 + 1, ("004", "Table 3.4"): 2 + 5, ("004", "Table 3.5"): 3,
                        ("004", "Table 3.6"): 2, ("004", "Table 3.7"): 3, ("004", "Table 3.9"): 1}
    ferplus = next(row for row in rows if row.table == "Table 3" and row.dataset == "ferplus"
                   and row.variant == "ViT-B/16, SL IN1K")
    assert (ferplus.method, ferplus.preset, ferplus.value) == ("vit-baseline", "paper", 88.91)
    assert ferplus.setting.classes == 8 and ferplus.setting.training.startswith("train + valid")  # PF-ViT §4.1
    assert ferplus.dataset_options == {"classes": 8, "train_on_valid": True}
    assert ferplus.run_switches == {"train.selection": "test"}  # "the highest FER accuracy numbers"
    cited = [row for row in rows if row.cited]
    assert cited and all(row.reproduce is None for row in cited)
    assert {row.value for row in rows if row.name == "PF-ViT" and row.dataset == "affectnet7"} == {67.23}


@pytest.mark.skipif(not SEEDS.is_dir(), reason="the source documents are not beside this checkout")
def test_every_number_appears_in_its_source_document() -> None:
    texts = {path.name: path.read_text(encoding="utf-8").replace(",", ".") for path in SEEDS.glob("*.txt")}
    for row in load_paper_results():
        assert f"{row.value:.2f}" in texts[row.document], (row.table, row.name, row.variant, row.value)


def test_reproduction_switches_are_valid_ferbench_settings(tmp_path: Path) -> None:
    """Each reproduction with an installed method plans as `ferbench run` plans it (a typo in a preset
    name or a switch would fail here), and the planned config holds every switch."""
    from ferbench.config import flatten
    from ferbench.planning import RunRequest, plan_run
    from ferbench.plugins import registry

    reg = registry()
    checked = 0
    for row in load_paper_results():
        if row.reproduce is None or row.method not in reg.methods or not row.protocol:
            continue  # cited works, and methods another installation provides (pfvit, mae)
        request = RunRequest(method=row.method, dataset=row.dataset, protocol=row.protocol, preset=row.preset,
                             assignments=list(row.config.items()), data_root=str(tmp_path))
        config = flatten(plan_run(request, reg, resolve_weights=False).config)
        assert len(reg.dataset(row.dataset).classes) >= row.setting.classes == row.options.get("classes", row.setting.classes)
        assert all(switch_matches(config[key], value) for key, value in row.config.items()), (row.table, row.variant)
        checked += 1
    assert checked >= 100


def test_commands_say_how_to_reproduce() -> None:
    rows = load_paper_results()
    mae = next(row for row in rows if row.table == "Table 3" and row.variant == "ViT-B/16, MAE AffectNet"
               and row.dataset == "rafdb")
    assert mae.commands() == [
        "ferbench pretrain --method mae --dataset affectnet8 --preset paper",
        "ferbench run --method vit-baseline --dataset rafdb --protocol official --preset paper "
        "--set dataset.image_variant=aligned --set train.selection=test --set model.weights='run:<pretrain>' "
        "--set model.weights_adapter=mae-encoder"]
    assert next(row for row in rows if row.cited).commands() == []


def test_placeholders_match_what_the_user_supplies() -> None:
    assert switch_matches("run:20240501-abc/fold-0", "run:<pretrain>")
    assert not switch_matches("timm:vit_base_patch16_224.mae", "run:<pretrain>")
    assert switch_matches("/home/me/20180402-114759-vggface2.pt", "<path of the weights file>")
    assert not switch_matches(None, "<path>") and switch_matches(2, 2.0) and not switch_matches(True, 1)
    assert switch_matches([1, 1.0], [1.0, 1.0]) and not switch_matches([1.0], [1.0, 1.0])


@pytest.mark.parametrize("change, message", [
    ({"rows": [{**ROW, "values": ["88.9%"]}]}, r"tables\[0\] \(pfvit Table 3\) rows\[0\] \(ViT baseline\): value '88.9%' must be a number"),
    ({"rows": [{**ROW, "values": [120]}]}, "must be a number of percent in"),
    ({"rows": [{**ROW, "values": [1, 2]}]}, "values must be a list of 1 numbers"),
    ({"metric": "top5"}, "metric 'top5' is not a ranked metric .*; choose one of: accuracy"),
    ({"columns": ["nope"]}, r"columns must be a non-empty list of setting names; unknown: \['nope'\]"),
    ({"source": "elsewhere"}, "source 'elsewhere' is not among the sources"),
    ({"rows": [{**ROW, "year": 2024}]}, "unknown year"),
    ({"rows": [{**ROW, "method": None}]}, "method must be a non-empty string"),
    ({"rows": [{**ROW, "reproduce": {"method": "vit-baseline"}}]}, "reproduce: missing preset"),
    ({"rows": [{**ROW, "reproduce": {**ROW["reproduce"], "set": {"train_on_valid": True}}}]},
     "set key 'train_on_valid' must be a dotted ferbench key"),
    ({"rows": [{**ROW, "reproduce": {**ROW["reproduce"], "set": {"dataset.classes": 7}}}]},
     "dataset options belong to the setting's options"),
    ({"rows": [ROW, ROW]}, "appears twice in Table 3"),
])
def test_malformed_tables_are_refused_with_one_line(change: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message) as error:
        parse_paper_results(_file(**change), "f.yaml")
    assert "\n" not in str(error.value) and str(error.value).startswith("f.yaml: ")


def test_malformed_files_and_settings_are_refused() -> None:
    broken_setting = _file()
    broken_setting["settings"]["fp"]["classes"] = "eight"
    missing = _file()
    del missing["settings"]["fp"]["selection"]
    for data, message in ((broken_setting, r"settings\.fp: classes must be a whole number"),
                          (missing, r"settings\.fp: missing selection"),
                          ({"version": 1, "results": []}, "version 1 .* is no longer read"),
                          ({**_file(), "version": 3}, "version 3 is not supported"),
                          ([ROW], "expected a mapping with exactly the keys version, sources, settings, tables")):
        with pytest.raises(UsageError, match=message):
            parse_paper_results(data, "f.yaml")
    assert re.search(r"\d", str(parse_paper_results(_file())[0].value))


def test_malformed_yaml_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 2\ntables:\n  - {source: [\n")
    with pytest.raises(UsageError, match="not valid YAML at line"):
        load_paper_results(broken)
    assert load_paper_results(SHIPPED) == load_paper_results()


def test_cli_reports_a_bad_results_file_in_one_line(tmp_path: Path, fb_env: dict[str, str]) -> None:
    bad = tmp_path / "papers.yaml"
    bad.write_text(yaml.safe_dump(_file(rows=[{**ROW, "values": ["n/a"]}])))
    result = ferbench("leaderboard", "--out", str(tmp_path / "site"), "--paper-results", str(bad), env=fb_env,
                      check=False)
    assert_one_line_error(result, str(bad), "rows[0]", "value 'n/a' must be a number")
