"""The published-results file: the shipped rows and their settings, and one-line errors on malformed rows."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import assert_one_line_error, ferbench
from ferbench.errors import UsageError
from ferbench.paper_results import SHIPPED, load_paper_results, parse_paper_results

ROW = {"method": "vit-baseline", "preset": "paper", "dataset": "ferplus", "protocol": "official",
       "setting": {"classes": 8, "training": "train + valid", "selection": "best epoch on test"},
       "config": {"dataset.train_on_valid": True, "train.selection": "test"},
       "metric": "accuracy", "value": 88.91, "source": "PF-ViT", "table": "Table 3"}


def test_shipped_rows_carry_the_papers_setting() -> None:
    rows = {row.dataset: row for row in load_paper_results()}
    assert set(rows) == {"rafdb", "affectnet8", "ferplus"}
    ferplus = rows["ferplus"]
    assert (ferplus.method, ferplus.preset, ferplus.value, ferplus.table) == ("vit-baseline", "paper", 88.91, "Table 3")
    assert ferplus.setting.classes == 8 and ferplus.setting.training == "train + valid"  # PF-ViT §4.1
    assert ferplus.dataset_options == {"classes": 8, "train_on_valid": True}
    assert all(row.run_switches == {"train.selection": "test"} for row in rows.values())  # best epoch on test
    assert rows["rafdb"].setting.classes == 7 and rows["affectnet8"].value == 57.99


def test_reproduction_switches_are_valid_ferbench_settings() -> None:
    from ferbench.config import build_config, flatten
    from ferbench.plugins import registry

    reg = registry()
    for row in load_paper_results():
        method, dataset = reg.method(row.method), reg.dataset(row.dataset)
        config = flatten(build_config(method.presets[row.preset], dataset.options, {}, list(row.config.items()),
                                      {f"dataset.{k}": v for k, v in dataset.option_choices.items()}))
        assert row.protocol in dataset.protocols and len(dataset.classes) == row.setting.classes
        assert all(config[key] == value for key, value in row.config.items())


@pytest.mark.parametrize("change, message", [
    ({"value": "88.9%"}, r"results\[0\] \(vit-baseline on ferplus\): value '88.9%' must be a number"),
    ({"value": 120}, "must be a number of percent in"),
    ({"metric": "top5"}, "metric 'top5' is not shown on leaderboards; choose one of: accuracy"),
    ({"setting": {"classes": 8, "training": "train"}}, "setting: missing selection"),
    ({"setting": {"classes": "eight", "training": "t", "selection": "s"}}, "setting.classes must be a whole number"),
    ({"config": {"train_on_valid": True}}, "config key 'train_on_valid' must be a dotted ferbench key"),
    ({"table": ""}, "table must be a non-empty string"),
    ({"year": 2024}, "unknown year"),
    ({"method": None}, "method must be a non-empty string"),
])
def test_malformed_rows_are_refused_with_one_line(change: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message) as error:
        parse_paper_results({"version": 1, "results": [{**ROW, **change}]}, "f.yaml")
    assert "\n" not in str(error.value) and str(error.value).startswith("f.yaml: ")


def test_malformed_files_are_refused(tmp_path: Path) -> None:
    for data, message in (([ROW], "expected a mapping with exactly the keys 'version'"),
                          ({"version": 2, "results": []}, "version 2 is not supported"),
                          ({"version": 1, "results": [ROW, ROW]}, r"results\[1\] repeats results\[0\]")):
        with pytest.raises(UsageError, match=message):
            parse_paper_results(data)
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\nresults:\n  - {method: [\n")
    with pytest.raises(UsageError, match="not valid YAML at line"):
        load_paper_results(broken)
    assert load_paper_results(SHIPPED) == load_paper_results()


def test_cli_reports_a_bad_results_file_in_one_line(tmp_path: Path, fb_env: dict[str, str]) -> None:
    bad = tmp_path / "papers.yaml"
    bad.write_text(yaml.safe_dump({"version": 1, "results": [{**ROW, "value": "n/a"}]}))
    result = ferbench("leaderboard", "--out", str(tmp_path / "site"), "--paper-results", str(bad), env=fb_env,
                      check=False)
    assert_one_line_error(result, str(bad), "results[0]", "value 'n/a' must be a number")
