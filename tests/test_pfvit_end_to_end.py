"""``ferbench pretrain --method mae`` then ``ferbench run --method pfvit`` (and ``vit-baseline``) from its
kept weights, through the CLI, with both image grids on the run pages."""
from __future__ import annotations

from pathlib import Path

import pytest
from conftest import data_info, ferbench, ferbench_json, method_config

from ferbench.store import Store
from ferbench_plugins.pfvit.model import PFViT

#: The tiny presets on synthfer (full size: the fine-tune must beat chance).
TINY = ["--preset", "tiny"]

pytestmark = pytest.mark.slow


def run_page_images(site: Path, run_id: str) -> list[Path]:
    """The image files a run's leaderboard page shows."""
    page = next((site / "runs").glob(f"{run_id}*.html")).read_text(encoding="utf-8")
    return [site / "runs" / part.split('"')[0] for part in page.split('<img src="')[1:]]


@pytest.mark.slow
def test_tiny_pretrain_then_pfvit_fine_tune_beats_chance_and_shows_both_grids(fb_env: dict[str, str],
                                                                              tmp_path: Path) -> None:
    pre = ferbench_json("pretrain", "-m", "mae", "-d", "synthfer", *TINY, env=fb_env)
    run = ferbench_json("run", "-m", "pfvit", "-d", "synthfer", *TINY, "--set", f"model.weights=run:{pre['run_id']}",
                        env=fb_env)
    assert run["weights"]["model.weights"]["ref"] == f"run:{pre['run_id']}"
    assert run["folds"]["0"]["mean_class_accuracy"] > 1 / 7 + 0.03
    store = Store(fb_env["FERBENCH_DB"])
    names = {row["run_id"]: row["name"] for row in store.query("SELECT run_id, name FROM artifacts WHERE kind = 'image'")}
    assert names == {pre["run_id"]: "reconstruction", run["run_id"]: "poker_face"}
    (recorded,) = store.query("SELECT parameters FROM runs WHERE run_id = ?", [run["run_id"]])
    model = PFViT(method_config("pfvit", "tiny"), data_info(image_size=32))
    evaluated = sum(p.numel() for m in (model.encoder, model.separator, model.classifier) for p in m.parameters())
    assert recorded["parameters"] == evaluated < sum(p.numel() for p in model.parameters())
    site = tmp_path / "site"
    ferbench("leaderboard", "--out", str(site), env=fb_env)
    for run_id in (pre["run_id"], run["run_id"]):
        (image,) = run_page_images(site, run_id)
        assert image.read_bytes().startswith(b"\x89PNG")


def test_vit_baseline_fine_tunes_from_the_pretrain_run(fb_env: dict[str, str]) -> None:
    small = ["--set", "dataset.samples=420", "--set", "dataset.subjects=20", "--set", "train.epochs=1"]
    pre = ferbench_json("pretrain", "-m", "mae", "-d", "synthfer", *TINY, *small, env=fb_env)
    run = ferbench_json("run", "-m", "vit-baseline", "-d", "synthfer", *TINY, *small, "--set", "data.image_size=32",
                        "--set", f"model.weights=run:{pre['run_id']}", "--set", "model.weights_adapter=mae-encoder",
                        env=fb_env)
    assert run["weights"]["model.weights"]["ref"] == f"run:{pre['run_id']}"
