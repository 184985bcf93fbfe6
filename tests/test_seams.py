"""The core seams the seed methods build on: pre-training stage, fine-tuning from kept weights, the
test-image overlap refusal, registered losses, several views per image and image outputs."""
from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import FAST, assert_one_line_error, ferbench, ferbench_json
from ferbench.loader import ArrayBatches, Normalizer
from ferbench.store import Store
from test_resume import wait_for

SYNTH = ["--set", "dataset.samples=420", "--set", "dataset.subjects=20"]
TOY = ["--preset", "tiny", *SYNTH]


def pretrain(env: dict[str, str], *extra: str) -> dict:
    return ferbench_json("pretrain", "-m", "toy-pretrainer", "-d", "synthfer", *TOY, *extra, env=env)


def test_pretraining_keeps_weights_and_images_and_a_classifier_fine_tunes_from_them(toy_env: dict[str, str]) -> None:
    pre = pretrain(toy_env)
    store = Store(toy_env["FERBENCH_DB"])
    (row,) = store.query("SELECT kind, status, selection_rule FROM runs WHERE run_id = ?", [pre["run_id"]])
    assert row == {"kind": "pretrain", "status": "completed", "selection_rule": "none"}
    assert not store.query("SELECT * FROM predictions") and not store.query("SELECT * FROM fold_metrics")
    (fold,) = store.query("SELECT n_train, weights_path, weights_sha256 FROM folds WHERE run_id = ?", [pre["run_id"]])
    seen = store.query("SELECT count(*) AS n FROM pretrain_images WHERE run_id = ?", [pre["run_id"]])[0]["n"]
    assert seen == fold["n_train"] > 0 and len(fold["weights_sha256"]) == 64
    (image,) = store.query("SELECT kind, name, path FROM artifacts WHERE run_id = ?", [pre["run_id"]])
    assert image["kind"] == "image" and (store.artifacts_dir / image["path"]).is_file()

    tuned = ferbench_json("run", "-m", "toy-classifier", "-d", "synthfer", *TOY,
                          "--set", f"model.weights=run:{pre['run_id']}", env=toy_env)
    recorded = tuned["weights"]["model.weights"]
    assert recorded["sha256"] == fold["weights_sha256"] and recorded["ref"] == f"run:{pre['run_id']}"
    again = ferbench_json("run", "-m", "toy-classifier", "-d", "synthfer", *TOY, env=toy_env)
    assert again["run_id"] != tuned["run_id"], "runs from other weights never resume each other"


@pytest.mark.slow
def test_fine_tune_whose_test_images_the_pre_training_saw_is_refused_unless_allowed(toy_env: dict[str, str]) -> None:
    # fold 0 of the subject-5fold protocol trains on subjects that the official split tests on
    pre = pretrain(toy_env, "--protocol", "subject-5fold", "--fold", "0")
    args = ["run", "-m", "toy-classifier", "-d", "synthfer", *TOY, "--set", f"model.weights=run:{pre['run_id']}"]
    refused = ferbench(*args, env=toy_env, check=False)
    assert_one_line_error(refused, "learned from test images", "--allow-test-images-in-pretraining")
    allowed = ferbench_json(*args, "--allow-test-images-in-pretraining", env=toy_env)
    (flags,) = Store(toy_env["FERBENCH_DB"]).query("SELECT flags FROM runs WHERE run_id = ?", [allowed["run_id"]])
    assert flags["flags"]["test_images_in_pretraining"]["0"] > 0
    same_fold = ferbench_json("run", "-m", "toy-classifier", "-d", "synthfer", *TOY, "--protocol", "subject-5fold",
                              "--fold", "0", "--set", f"model.weights=run:{pre['run_id']}", env=toy_env)
    assert same_fold["aggregate"]["accuracy"]["n"] == 1


def test_pretraining_resumes_after_a_kill(toy_env: dict[str, str]) -> None:
    args = ["pretrain", "-m", "toy-pretrainer", "-d", "synthfer", *TOY, "--set", "train.epochs=6"]
    proc = subprocess.Popen([sys.executable, "-m", "ferbench", *args], env=toy_env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    checkpoint = wait_for("*-artifacts/*/fold-0.pt", Path(toy_env["FERBENCH_DB"]).parent)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    (killed,) = Store(toy_env["FERBENCH_DB"]).query("SELECT run_id, status FROM runs")
    assert killed["status"] == "running" and checkpoint.exists()
    resumed = ferbench_json(*args, env=toy_env)
    assert resumed["run_id"] == killed["run_id"] and resumed["resumed"] is True
    epochs = Store(toy_env["FERBENCH_DB"]).query(
        "SELECT epoch, count(*) AS n FROM curves WHERE name = 'train_loss' GROUP BY epoch ORDER BY epoch")
    assert epochs == [{"epoch": e, "n": 1} for e in range(6)]


def test_a_loss_registered_by_a_plugin_is_selectable_by_vit_baseline(toy_env: dict[str, str]) -> None:
    summary = ferbench_json("run", "-m", "vit-baseline", "-d", "synthfer", *FAST, "--set", "loss.name=toy-tempered-ce",
                            "--set", "loss.temperature=3", env=toy_env)
    (run,) = Store(toy_env["FERBENCH_DB"]).query("SELECT config FROM runs WHERE run_id = ?", [summary["run_id"]])
    assert run["config"]["loss"] == {"name": "toy-tempered-ce", "temperature": 3.0}
    unknown = ferbench("run", "-m", "vit-baseline", "-d", "synthfer", *FAST, "--set", "loss.name=nope", env=toy_env,
                       check=False)
    assert_one_line_error(unknown, "loss.name", "toy-tempered-ce", "ce")
    wrong_key = ferbench("run", "-m", "vit-baseline", "-d", "synthfer", *FAST, "--set", "loss.temperature=3",
                         env=toy_env, check=False)
    assert_one_line_error(wrong_key, "loss.temperature", "loss.label_smoothing")


def test_pretrainers_and_classifiers_are_run_by_their_own_commands(toy_env: dict[str, str]) -> None:
    wrong = ferbench("run", "-m", "toy-pretrainer", "-d", "synthfer", *TOY, env=toy_env, check=False)
    assert_one_line_error(wrong, "ferbench pretrain")
    wrong = ferbench("pretrain", "-m", "toy-classifier", "-d", "synthfer", *TOY, env=toy_env, check=False)
    assert_one_line_error(wrong, "not a pre-trainer", "toy-pretrainer")


def test_views_are_independent_draws_that_replay_for_the_same_epoch() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (12, 16, 16, 3), dtype=np.uint8)
    norm = Normalizer({"rgb": ([0.5] * 3, [0.25] * 3)}, torch.device("cpu"))
    augment = {"hflip": 0.5, "rotate_degrees": 20.0, "scale": [0.9, 1.1], "translate": 0.1, "color_jitter": 0.3,
               "random_erasing": 0.5}

    def views(epoch: int) -> list[torch.Tensor]:
        loader = ArrayBatches({"rgb": images}, np.zeros(12, dtype=np.int64), np.arange(12), 12, torch.device("cpu"),
                              norm, train=True, augment_cfg=augment, seed=5, views=2)
        (batch,) = list(loader.epoch(epoch))
        assert len(batch.views) == 2 and batch.inputs is batch.views[0]
        return [view["rgb"] for view in batch.views]

    first, second = views(3)
    assert not torch.allclose(first, second)
    assert all(torch.equal(a, b) for a, b in zip(views(3), (first, second)))
    evaluation = ArrayBatches({"rgb": images}, np.zeros(12, dtype=np.int64), np.arange(12), 12, torch.device("cpu"),
                              norm, augment_cfg=augment, views=2)
    assert len(next(iter(evaluation.epoch())).views) == 1


def test_image_outputs_reach_the_run_page_and_pretraining_is_listed_apart(toy_env: dict[str, str], tmp_path: Path) -> None:
    pre = pretrain(toy_env)
    site = tmp_path / "site"
    ferbench("leaderboard", "--out", str(site), env=toy_env)
    listing = (site / "pretraining.html").read_text()
    assert pre["run_id"] in listing and "toy-pretrainer" in listing
    assert pre["run_id"] not in (site / "index.html").read_text().split("pre-training run")[0]
    page = next((site / "runs").glob(f"{pre['run_id']}*.html")).read_text()
    (src,) = [part.split('"')[0] for part in page.split('<img src="')[1:]]
    image = site / "runs" / src
    assert image.is_file() and image.read_bytes().startswith(b"\x89PNG")
