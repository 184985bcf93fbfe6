"""ferbench.testing: the helpers plugin authors test with (and that `ferbench plugins check` runs)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from ferbench.errors import PluginError
from ferbench.testing import check_dataset, check_metric, isolated_home, mock_run, tiny_data


def test_tiny_data_is_a_valid_learnable_table_with_checked_pixels() -> None:
    data = tiny_data(per_class=5, subjects=5, modalities=("rgb", "depth"))
    assert data.classes == ("neutral", "happiness", "surprise") and len(data) == 15
    assert sorted(set(data.split)) == ["test", "train"] and (data.split == "test").sum() == 3
    pixels = data.pixels(16)
    assert pixels.arrays["rgb"].shape == (15, 16, 16, 3) and pixels.arrays["depth"].shape == (15, 16, 16, 1)
    brightness = pixels.arrays["rgb"].mean(axis=(1, 2, 3))
    assert all(brightness[data.labels == k].max() < brightness[data.labels == k + 1].min() for k in range(2))


def test_pixels_that_break_the_contract_are_refused() -> None:
    data = tiny_data()
    data.load_pixels = lambda size: {"rgb": np.zeros((len(data), size, size, 3), dtype=np.float32)}
    with pytest.raises(PluginError, match="rgb pixels are float32; return uint8"):
        data.pixels(16)
    data.load_pixels = lambda size: {"depth": np.zeros((len(data), size, size, 1), dtype=np.uint8)}
    with pytest.raises(PluginError, match=r"returned \['depth'\] but the table declares modalities \['rgb'\]"):
        data.pixels(16)


@pytest.mark.filterwarnings("ignore:The least populated class:UserWarning")  # 70 faces, 5 folds
def test_check_dataset_summarises_a_registered_dataset(fb_env: dict[str, str]) -> None:
    summary = check_dataset("synthfer", options={"samples": 70, "subjects": 10}, image_size=16)
    assert summary["samples"] == 70 and summary["pixels"] == {"rgb": [70, 16, 16, 3], "depth": [70, 16, 16, 1]}
    assert summary["folds"] == {"official": 1, "subject-5fold": 5, "random-60-40": 3}
    assert sum(summary["class_counts"]) == 70 and summary["unreadable"] == 0


def test_check_metric_scores_random_predictions() -> None:
    assert 0 < check_metric("accuracy") < 0.5


def test_isolated_home_restores_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FERBENCH_DB", raising=False)
    monkeypatch.setenv("FERBENCH_HOME", "/elsewhere")
    with isolated_home(tmp_path):
        assert os.environ["FERBENCH_DB"] == str(tmp_path / "ferbench.duckdb")
    assert os.environ["FERBENCH_HOME"] == "/elsewhere" and "FERBENCH_DB" not in os.environ


def test_mock_run_trains_a_method_for_a_few_steps_in_a_throwaway_database(fb_env: dict[str, str]) -> None:
    summary = mock_run("vit-baseline", assignments=[("model.depth", 1), ("data.image_size", 16)])
    assert summary["folds"].keys() == {"0"} and summary["aggregate"]["accuracy"]["n"] == 1
    assert any(line.startswith("fold 0: accuracy") for line in summary["log"])
    assert not Path(fb_env["FERBENCH_DB"]).exists()  # the user's database is untouched
