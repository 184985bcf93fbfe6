"""Kept weights: ``ferbench eval`` scores them without training, exactly as the run that kept them;
weights a run needs but cannot get fail at once, in one line."""
from __future__ import annotations

import time

from conftest import FAST, assert_one_line_error, ferbench, ferbench_json
from ferbench.store import Store


def test_eval_of_a_kept_run_reproduces_its_stored_test_metrics(toy_env: dict[str, str]) -> None:
    fb_env = toy_env
    trained = ferbench_json("run", "-m", "vit-baseline", "-d", "synthfer", *FAST, env=fb_env)
    evaluated = ferbench_json("eval", "-m", "vit-baseline", "-d", "synthfer", "--weights",
                              f"run:{trained['run_id']}", env=fb_env)
    assert evaluated["kind"] == "eval" and evaluated["run_id"] != trained["run_id"]
    assert evaluated["folds"] == trained["folds"]  # the same numbers, to the last digit
    store = Store(fb_env["FERBENCH_DB"])
    _, labels, predictions, probabilities = store.predictions(trained["run_id"], 0)
    _, labels2, predictions2, probabilities2 = store.predictions(evaluated["run_id"], 0)
    assert (labels == labels2).all() and (predictions == predictions2).all()
    assert abs(probabilities - probabilities2).max() < 1e-5
    (row,) = store.query("SELECT kind, selection_rule, weights FROM runs WHERE run_id = ?", [evaluated["run_id"]])
    assert row["kind"] == "eval" and row["selection_rule"] == "given weights"
    assert row["weights"]["eval.weights"]["ref"] == f"run:{trained['run_id']}"
    (kept,) = store.query("SELECT weights_sha256 FROM folds WHERE run_id = ?", [trained["run_id"]])
    assert row["weights"]["eval.weights"]["sha256"] == kept["weights_sha256"]

    wrong_method = ferbench("eval", "-m", "toy-classifier", "-d", "synthfer", "--weights",
                            f"run:{trained['run_id']}", env=fb_env, check=False)
    assert_one_line_error(wrong_method, "weights of method vit-baseline, not toy-classifier")
    unknown = ferbench("eval", "-m", "vit-baseline", "-d", "synthfer", "--weights", "run:nope", env=fb_env, check=False)
    assert_one_line_error(unknown, "no run nope")


def test_a_paper_preset_run_offline_fails_at_once_naming_the_file_to_pull(fb_env: dict[str, str], tmp_path) -> None:
    env = {**fb_env, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub")}
    started = time.monotonic()
    result = ferbench("run", "-m", "vit-baseline", "-d", "synthfer", env=env, check=False)
    elapsed = time.monotonic() - started
    line = assert_one_line_error(result, "ferbench weights pull", "vit_base_patch16_224.augreg_in21k_ft_in1k")
    assert "HF_HUB_CACHE" in line or "cache" in line
    assert not Store(fb_env["FERBENCH_DB"]).path.exists(), "nothing is recorded for a run that cannot start"
    print(f"offline paper preset refused in {elapsed:.1f}s")
