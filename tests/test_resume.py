"""A run killed mid-epoch resumes from its last checkpoint and records each fold exactly once."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import FAST, ferbench_json, wait_for
from ferbench.store import Store

ARGS = ["run", "-m", "vit-baseline", "-d", "synthfer", *FAST, "--set", "dataset.samples=900",
        "--set", "train.epochs=4", "--protocol", "random-60-40", "--fold", "1"]


@pytest.mark.slow
def test_killed_run_resumes_and_matches_an_uninterrupted_one(fb_env: dict[str, str], tmp_path: Path) -> None:
    db = Path(fb_env["FERBENCH_DB"])
    proc = subprocess.Popen([sys.executable, "-m", "ferbench", *ARGS], env=fb_env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    checkpoint = wait_for("*-artifacts/*/fold-1.pt", db.parent)
    proc.send_signal(signal.SIGKILL)  # no chance to clean up: as if the machine died mid-epoch
    proc.wait(timeout=30)
    store = Store(db)
    (interrupted,) = store.query("SELECT run_id, status FROM runs")
    assert interrupted["status"] == "running" and checkpoint.exists()
    assert not store.query("SELECT * FROM folds")

    resumed = ferbench_json(*ARGS, env=fb_env)
    assert resumed["run_id"] == interrupted["run_id"] and resumed["resumed"] is True
    assert store.query("SELECT status FROM runs") == [{"status": "completed"}]
    assert store.query("SELECT fold, count(*) AS n FROM folds GROUP BY fold") == [{"fold": 1, "n": 1}]
    epochs = store.query("SELECT epoch, count(*) AS n FROM curves WHERE name = 'train_loss' GROUP BY epoch "
                         "ORDER BY epoch")
    assert epochs == [{"epoch": e, "n": 1} for e in range(4)]
    assert not checkpoint.exists(), "the checkpoint is removed once the fold is recorded"

    # resuming replays the remaining epochs exactly: same scores as a run that was never killed
    clean_env = {**fb_env, "FERBENCH_DB": str(tmp_path / "clean.duckdb")}
    clean = ferbench_json(*ARGS, env=clean_env)
    _, labels, _, probabilities = store.predictions(resumed["run_id"], 1)
    _, clean_labels, _, clean_probabilities = Store(clean_env["FERBENCH_DB"]).predictions(clean["run_id"], 1)
    assert np.array_equal(labels, clean_labels)
    assert np.allclose(probabilities, clean_probabilities, atol=1e-4)
    assert json.dumps(resumed["folds"]) == json.dumps(clean["folds"])


@pytest.mark.slow
def test_interrupted_run_is_marked_and_a_finished_run_is_not_resumed(fb_env: dict[str, str]) -> None:
    db = Path(fb_env["FERBENCH_DB"])
    proc = subprocess.Popen([sys.executable, "-m", "ferbench", *ARGS], env=fb_env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    wait_for("*-artifacts/*/fold-1.pt", db.parent)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "run the same command again to resume" in stderr
    assert "Traceback" not in stderr
    assert Store(db).query("SELECT status FROM runs") == [{"status": "interrupted"}]
    first = ferbench_json(*ARGS, env=fb_env)
    second = ferbench_json(*ARGS, env=fb_env)
    assert first["resumed"] is True and second["resumed"] is False and first["run_id"] != second["run_id"]
