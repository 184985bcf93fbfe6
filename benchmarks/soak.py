"""Soak test: SIGKILL a multi-fold run at random moments, resume it each time, and compare the result with
an uninterrupted run of the same command.

Kills are placed by what the run does, not by the clock, so that they land in every phase whatever the
machine's speed: some at a random moment of start-up, some within 0.3 s of the process taking its run lock
(the start-up transaction), the others a random 0-0.5 s after the process saved its 1st to 4th checkpoint or
kept weights (training, evaluation, fold writes, between folds, the final status update). The same command is
started again until ``--kills`` kills have been made (or a start completes the run first); a last start runs
to the end. Reported: completed runs (must be 1), folds recorded once, predictions per fold against the fold's
test size, the largest probability difference from the uninterrupted run (0 when bit-identical) and what
``ferbench db check`` finds.

    python benchmarks/soak.py                      # 20 kills of a 5-fold vit-baseline tiny run (slow)
    python benchmarks/soak.py --kills 5 --json     # a shorter soak
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from ferbench import dbcheck
from ferbench.store import Store

RUN = ["run", "-m", "vit-baseline", "-d", "synthfer", "--protocol", "subject-5fold", "--preset", "tiny",
       "--set", "dataset.samples=600", "--set", "dataset.subjects=20", "--set", "data.image_size=32",
       "--set", "model.depth=2", "--set", "train.epochs=8", "--no-progress"]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0, help="seeds the kill moments")
    parser.add_argument("--work", type=Path, help="folder for the two databases (default: a temporary one)")
    parser.add_argument("--json", action="store_true")
    return parser.parse_args()


def ferbench(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "ferbench", *RUN], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)


def environment(home: Path, db: Path) -> dict[str, str]:
    return {**os.environ, "FERBENCH_HOME": str(home), "FERBENCH_DB": str(db)}


def saves(store: Store) -> dict[Path, int]:
    """Checkpoints and kept weights under the artifacts folder, with their modification times."""
    found = {}
    for path in [*store.artifacts_dir.glob("*/fold-?.pt"), *store.artifacts_dir.glob("*/fold-?.safetensors")]:
        try:
            found[path] = path.stat().st_mtime_ns
        except FileNotFoundError:  # replaced meanwhile
            pass
    return found


def wait_for_saves(store: Store, proc: subprocess.Popen[bytes], count: int) -> bool:
    """Wait until ``proc`` has saved ``count`` checkpoints or kept weights; False when it ended first."""
    seen, saved = saves(store), 0
    while saved < count:
        if proc.poll() is not None:
            return False
        time.sleep(0.005)
        now = saves(store)
        saved += sum(1 for path, mtime in now.items() if seen.get(path) != mtime)
        seen = now
    return True


def lock_held(store: Store, proc: subprocess.Popen[bytes]) -> bool:
    """Wait until ``proc`` holds its run lock (the lock file names its pid); False when it ended first."""
    locks = store.artifacts_dir / "locks"
    while not any(f'"pid": {proc.pid},' in path.read_text() for path in locks.glob("*.lock")):
        if proc.poll() is not None:
            return False
        time.sleep(0.005)
    return True


def progress(store: Store) -> dict[str, int]:
    """Where the run stood when a kill came: whether it was recorded yet, and its recorded folds."""
    if not store.path.exists():
        return {"run_recorded": 0, "folds_recorded": 0}
    return {"run_recorded": store.query("SELECT count(*) AS n FROM runs")[0]["n"],
            "folds_recorded": store.query("SELECT count(*) AS n FROM folds")[0]["n"]}


def completed(store: Store) -> bool:
    return store.path.exists() and bool(store.query("SELECT 1 FROM runs WHERE status = 'completed'"))


def compare(store: Store, reference: Store) -> dict[str, Any]:
    """The checks: runs, folds once, predictions per fold, probability differences, db check findings."""
    runs = store.query("SELECT run_id, status FROM runs")
    (ref_id,) = [row["run_id"] for row in reference.query("SELECT run_id FROM runs")]
    folds = store.query("SELECT f.run_id, f.fold, f.n_test, count(p.sample_id) AS n FROM folds f LEFT JOIN "
                        "predictions p USING (run_id, fold) GROUP BY ALL ORDER BY f.fold")
    largest = 0.0
    for row in folds:
        ids, _, _, probabilities = store.predictions(row["run_id"], row["fold"])
        ref_ids, _, _, ref_probabilities = reference.predictions(ref_id, row["fold"])
        assert ids == ref_ids, "different test samples"
        largest = max(largest, float(np.abs(probabilities - ref_probabilities).max()))
    return {"runs": len(runs), "completed_runs": sum(row["status"] == "completed" for row in runs),
            "folds_recorded": [row["fold"] for row in folds],
            "predictions_equal_test_size": all(row["n"] == row["n_test"] for row in folds),
            "max_probability_difference": largest,
            "db_check_findings": [finding.text for finding in dbcheck.check(store)]}


def soak(env: dict[str, str], store: Store, startup: float, rng: random.Random,
         phases: list[str]) -> list[dict[str, Any]]:
    """Kill and restart the run once per phase drawn (fewer times when a start completes it first)."""
    made: list[dict[str, Any]] = []
    for phase in phases:
        proc = ferbench(env)
        if phase == "start-up":
            alive = True
            time.sleep(rng.uniform(0.0, startup))
        elif phase == "opening the run":
            alive = lock_held(store, proc)
            time.sleep(rng.uniform(0.0, 0.3))
        else:
            count = rng.randint(1, 4)
            phase, alive = f"after {count} save(s)", wait_for_saves(store, proc, count)
            time.sleep(rng.uniform(0.0, 0.5))
        if not alive or proc.poll() is not None:
            break  # it ended before its kill came: the run is complete
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        made.append({"phase": phase, **progress(store)})
        if completed(store):
            break  # it completed the run just before its kill came
    return made


def main() -> None:
    args = parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="ferbench-soak-"))
    home = work / "home"  # one cache for both runs
    reference, soaked = Store(work / "reference.duckdb"), Store(work / "soaked.duckdb")
    started = time.monotonic()
    uninterrupted = ferbench(environment(home, reference.path))
    lock_held(reference, uninterrupted)
    startup = time.monotonic() - started
    if uninterrupted.wait() != 0:
        sys.exit("the uninterrupted run failed")
    duration = time.monotonic() - started

    rng = random.Random(args.seed)
    early = round(0.15 * args.kills)
    phases = ["start-up"] * early + ["opening the run"] * early + ["training"] * (args.kills - 2 * early)
    rng.shuffle(phases)
    env = environment(home, soaked.path)
    kills = soak(env, soaked, startup, rng, phases)
    final = 0 if completed(soaked) else ferbench(env).wait()
    result = {"kills": kills, "uninterrupted_s": round(duration, 1), "final_exit": final, **compare(soaked, reference)}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    made = Counter(kill["phase"] for kill in kills)
    folds = Counter(kill["folds_recorded"] for kill in kills if kill["run_recorded"])
    print(f"{len(kills)} kills ({', '.join(f'{n} {phase}' for phase, n in sorted(made.items()))}; "
          f"{sum(not kill['run_recorded'] for kill in kills)} before the run was recorded; folds recorded at the "
          f"others: {dict(sorted(folds.items()))}), then a final start (exit {final})")
    print(f"uninterrupted run: {duration:.0f}s")
    print(f"runs: {result['runs']} ({result['completed_runs']} completed); folds recorded: {result['folds_recorded']}; "
          f"predictions per fold = test size: {result['predictions_equal_test_size']}")
    print(f"largest probability difference from the uninterrupted run: {result['max_probability_difference']:g}")
    print(f"ferbench db check: {len(result['db_check_findings'])} finding(s)")


if __name__ == "__main__":
    main()
