"""``--deterministic`` and what a run records about repeatability (threads, deterministic algorithms)."""
from __future__ import annotations

import numpy as np

from conftest import ferbench_json
from ferbench.store import Store

ARGS = ["run", "-m", "toy-classifier", "-d", "synthfer", "--preset", "tiny", "--set", "dataset.samples=240",
        "--set", "dataset.subjects=12", "--protocol", "random-60-40", "--fold", "1", "--no-progress"]


def test_deterministic_runs_are_recorded_as_such_and_never_mixed_with_others(toy_env: dict[str, str]) -> None:
    plain = ferbench_json(*ARGS, env=toy_env)
    deterministic = ferbench_json(*ARGS, "--deterministic", env=toy_env)
    store = Store(toy_env["FERBENCH_DB"])
    rows = {row["run_id"]: row for row in store.query("SELECT run_id, run_key, status, versions FROM runs")}
    first, second = rows[plain["run_id"]], rows[deterministic["run_id"]]
    assert first["run_key"] != second["run_key"]  # the flag is part of the key: no resuming across it
    for flag in ("deterministic_algorithms", "cudnn_deterministic"):
        assert (first["versions"][flag], second["versions"][flag]) == ("False", "True")
    assert first["versions"]["torch_threads"] == second["versions"]["torch_threads"]
    # same seed, machine and threads on the CPU: the same probabilities bit for bit, with or without the flag
    _, _, _, a = store.predictions(plain["run_id"], 1)
    _, _, _, b = store.predictions(deterministic["run_id"], 1)
    assert np.array_equal(a, b)
