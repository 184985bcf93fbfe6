"""End-to-end runs through the real CLI: what is recorded, how epochs are selected, concurrency."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest

from conftest import FAST, ferbench, ferbench_json
from ferbench import metrics
from ferbench.store import Store


def test_run_records_everything_needed_to_recompute_scores(fb_env: dict[str, str]) -> None:
    summary = ferbench_json("run", "-m", "vit-baseline", "-d", "synthfer", *FAST, "--seed", "3", env=fb_env)
    assert summary["folds"].keys() == {"0"} and summary["seed"] == 3
    store = Store(fb_env["FERBENCH_DB"])
    (run,) = store.query("SELECT * FROM runs")
    assert run["status"] == "completed" and run["run_id"] == summary["run_id"]
    assert run["config"]["train"]["epochs"] == 2 and run["config"]["data"]["image_size"] == 32
    assert run["versions"]["torch"] and run["versions"]["ferbench"] and run["manifest_hash"]
    assert run["selection_rule"] == "final" and run["selected_on_test"] is False
    assert run["started_at"] <= run["ended_at"]
    manifest = store.query("SELECT manifest FROM manifests WHERE manifest_hash = ?", [run["manifest_hash"]])
    test_ids = manifest[0]["manifest"]["folds"][0]["test"]
    ids, labels, predictions, probabilities = store.predictions(run["run_id"], 0)
    assert ids == sorted(test_ids)
    assert np.allclose(probabilities.sum(1), 1, atol=1e-4) and (probabilities.argmax(1) == predictions).all()
    recomputed = {"accuracy": metrics.accuracy(labels, predictions, None, 7),
                  "mean_class_accuracy": metrics.mean_class_accuracy(labels, predictions, None, 7),
                  "macro_f1": metrics.macro_f1(labels, predictions, None, 7)}
    assert summary["folds"]["0"] == pytest.approx(recomputed)
    epochs = store.query("SELECT DISTINCT epoch FROM curves WHERE name = 'train_loss' ORDER BY epoch")
    assert [e["epoch"] for e in epochs] == [0, 1]


def test_validation_selection_is_recorded_and_test_selection_is_marked(fb_env: dict[str, str]) -> None:
    val = ferbench_json("run", "-m", "vit-baseline", "-d", "synthfer", *FAST, "--set", "train.selection=val",
                        "--set", "train.epochs=3", env=fb_env)
    test = ferbench_json("run", "-m", "vit-baseline", "-d", "synthfer", *FAST, "--set", "train.selection=test",
                         env=fb_env)
    store = Store(fb_env["FERBENCH_DB"])
    rows = {r["run_id"]: r for r in store.query(
        "SELECT r.run_id, r.selected_on_test, r.val_rule, f.selection, f.n_val FROM runs r JOIN folds f USING (run_id)")}
    assert rows[val["run_id"]]["selected_on_test"] is False and rows[val["run_id"]]["n_val"] > 0
    assert "carved 0.1 of train by subject" in rows[val["run_id"]]["val_rule"]
    selection = rows[val["run_id"]]["selection"]
    assert selection["rule"] == "val" and selection["metric"] == "mean_class_accuracy"
    curve = store.query("SELECT epoch, value FROM curves WHERE run_id = ? AND name = 'val_mean_class_accuracy'",
                        [val["run_id"]])
    best = max(curve, key=lambda row: (row["value"], -row["epoch"]))
    assert selection["epoch"] == best["epoch"] and selection["value"] == pytest.approx(best["value"])
    assert rows[test["run_id"]]["selected_on_test"] is True
    listing = ferbench("runs", env=fb_env).stdout
    assert test["run_id"] in listing


def test_two_processes_on_one_database_both_record(fb_env: dict[str, str]) -> None:
    command = [sys.executable, "-m", "ferbench", "run", "-m", "vit-baseline", "-d", "synthfer", *FAST, "--json"]
    procs = [subprocess.Popen(command + ["--seed", str(seed)], env=fb_env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for seed in (0, 1)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-500:] for o in outputs]
    runs = {json.loads(out)["run_id"] for out, _ in outputs}
    store = Store(fb_env["FERBENCH_DB"])
    recorded = store.query("SELECT run_id, status FROM runs")
    assert {r["run_id"] for r in recorded} == runs and all(r["status"] == "completed" for r in recorded)
    assert store.query("SELECT count(DISTINCT run_id) AS n FROM fold_metrics")[0]["n"] == 2


def test_export_csv_and_parquet(fb_env: dict[str, str], tmp_path: Path) -> None:
    summary = ferbench_json("run", "-m", "vit-baseline", "-d", "synthfer", *FAST, env=fb_env)
    for fmt in ("csv", "parquet"):
        out = tmp_path / fmt
        ferbench("export", "--format", fmt, "--out", str(out), env=fb_env)
        reader = "read_csv_auto" if fmt == "csv" else "read_parquet"
        with duckdb.connect() as con:
            n = con.execute(f"SELECT count(*) FROM {reader}('{out / ('predictions.' + fmt)}')").fetchone()[0]
            run_ids = con.execute(f"SELECT run_id FROM {reader}('{out / ('runs.' + fmt)}')").fetchall()
        assert n == len(Store(fb_env["FERBENCH_DB"]).predictions(summary["run_id"], 0)[0])
        assert run_ids == [(summary["run_id"],)]


@pytest.mark.slow
def test_tiny_vit_learns_synthfer_well_above_chance(fb_env: dict[str, str]) -> None:
    """The README's figure: the tiny preset on default synthfer, about two minutes on a 2-core CPU."""
    summary = ferbench_json("run", "-m", "vit-baseline", "-d", "synthfer", "--preset", "tiny", env=fb_env)
    assert summary["aggregate"]["mean_class_accuracy"]["mean"] > 0.40  # chance is 1/7
    assert summary["aggregate"]["accuracy"]["mean"] > 0.60  # majority class (happiness) is ~37%
