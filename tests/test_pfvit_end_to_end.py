"""``ferbench pretrain --method mae`` then ``ferbench run --method pfvit`` from its weights, through the CLI.

These need the core's pre-training stage (``ferbench pretrain``, kept weights, ``images()`` artifacts) and
weights resolution (``ferbench.weights``); they are skipped where the core lacks them.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from conftest import ferbench, ferbench_json

#: Small synthfer and few epochs: the pipeline, not the accuracy ceiling.
SMALL = ["--preset", "tiny", "--set", "dataset.samples=840", "--set", "dataset.subjects=24", "--set",
         "data.image_size=32"]


def core_has_pretraining() -> bool:
    from ferbench.cli import main

    return "pretrain" in getattr(main, "commands", {}) and importlib.util.find_spec("ferbench.weights") is not None


pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not core_has_pretraining(), reason="needs the core pre-training stage")]


def test_tiny_pretrain_then_pfvit_fine_tune_beats_chance_and_shows_both_grids(fb_env: dict[str, str],
                                                                              tmp_path: Path) -> None:
    pretrain = ferbench_json("pretrain", "--method", "mae", "--dataset", "synthfer", *SMALL, env=fb_env)
    weights = f"model.weights=run:{pretrain['run_id']}"
    run = ferbench_json("run", "--method", "pfvit", "--dataset", "synthfer", *SMALL, "--set", weights, env=fb_env)
    assert run["folds"]["0"]["mean_class_accuracy"] > 1 / 7 + 0.05
    site = tmp_path / "site"
    ferbench("leaderboard", "--out", str(site), env=fb_env)
    pages = "\n".join(page.read_text(encoding="utf-8") for page in site.rglob("*.html"))
    assert "reconstruction" in pages and "poker_face" in pages
    assert any(site.rglob("*.png")) or ".png" in pages


def test_vit_baseline_fine_tunes_from_the_pretrain_run(fb_env: dict[str, str]) -> None:
    pretrain = ferbench_json("pretrain", "--method", "mae", "--dataset", "synthfer", *SMALL, env=fb_env)
    run = ferbench_json("run", "--method", "vit-baseline", "--dataset", "synthfer", *SMALL,
                        "--set", f"model.weights=run:{pretrain['run_id']}", "--set", "model.weights_adapter=mae-encoder",
                        env=fb_env)
    assert run["folds"]["0"]["mean_class_accuracy"] > 1 / 7
