"""Beyond one process: a run on two gloo ranks (torchrun), sweeps through submitit's local executor, merges.

Real processes throughout: ``ferbench run --nproc 2`` starts torchrun, sweep workers are submitit jobs, and
kills are SIGKILLs of the process doing the work.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import assert_one_line_error, ferbench, ferbench_json, wait_for
from ferbench.store import Store

#: A one-block ViT on 16 px synthfer faces without augmentation (ranks would draw different flips).
TINY = ["-m", "vit-baseline", "-d", "synthfer", "--preset", "tiny", "--set", "dataset.samples=200",
        "--set", "dataset.subjects=10", "--set", "data.image_size=16", "--set", "model.patch_size=8",
        "--set", "model.depth=1", "--set", "data.augment.hflip=0", "--no-progress"]
#: Two ranks of batch 8 average their gradients into the gradient of one batch of 16: the same samples
#: per step, so scores agree up to float rounding. Stated tolerance: probabilities within 1e-4, scalar
#: metrics within 0.01 (one test sample of 40 is 0.025).
PROBABILITY_TOLERANCE, METRIC_TOLERANCE = 1e-4, 0.01


def _process_with(env: dict[str, str], timeout: float = 120) -> int:
    """The pid of a process whose environment holds every ``env`` item (e.g. a test's marker and RANK=1)."""
    wanted = {f"{key}={value}".encode() for key, value in env.items()}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                environ = set((entry / "environ").read_bytes().split(b"\0"))
            except OSError:
                continue
            if wanted <= environ:
                return int(entry.name)
        time.sleep(0.05)
    raise AssertionError(f"no process with {env} appeared")


def _warm_synthfer(samples: int, subjects: int, size: int = 16) -> None:
    """Render synthfer's cache once before processes that start together read it (main's cache writes
    through one temporary name per file; the faults branch makes them per process)."""
    from ferbench.contracts import load_dataset
    from ferbench.plugins import registry

    spec = registry().dataset("synthfer")
    load_dataset(spec, None, {**spec.options, "samples": samples, "subjects": subjects}).pixels(size)


def _wait_for_rows(store: Store, sql: str, timeout: float = 300) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if store.path.exists():
            rows = store.query(sql)
            if rows:
                return rows
        time.sleep(0.2)
    raise AssertionError(f"nothing matched {sql!r}")


@pytest.mark.slow
def test_two_gloo_ranks_score_like_one_process(fb_env: dict[str, str]) -> None:
    single = ferbench_json("run", *TINY, "--set", "train.epochs=2", "--set", "train.batch_size=16", env=fb_env)
    pair = ferbench_json("run", *TINY, "--set", "train.epochs=2", "--set", "train.batch_size=8", "--nproc", "2",
                         env=fb_env)
    store = Store(fb_env["FERBENCH_DB"])
    runs = {row["run_id"]: row for row in store.query("SELECT * FROM runs")}
    assert set(runs) == {single["run_id"], pair["run_id"]}, "rank 1 recorded nothing of its own"
    assert runs[pair["run_id"]]["world_size"] == 2 and runs[single["run_id"]]["world_size"] == 1
    ids, labels, _, probabilities = store.predictions(single["run_id"], 0)
    pair_ids, pair_labels, _, pair_probabilities = store.predictions(pair["run_id"], 0)
    (fold,) = store.query("SELECT n_test FROM folds WHERE run_id = ?", [pair["run_id"]])
    assert pair_ids == ids and len(pair_ids) == fold["n_test"]  # gathered, trimmed, every test sample once
    assert np.array_equal(labels, pair_labels)
    assert np.abs(probabilities - pair_probabilities).max() < PROBABILITY_TOLERANCE
    for name, value in single["folds"]["0"].items():
        assert abs(pair["folds"]["0"][name] - value) <= METRIC_TOLERANCE, name
    cost = runs[pair["run_id"]]
    assert cost["accelerator"].startswith("cpu") and cost["wall_seconds"] > 0
    assert cost["images_per_second"] > 0 and cost["peak_memory_bytes"] > 2**20
    site = Path(fb_env["FERBENCH_HOME"]) / "site"
    ferbench("leaderboard", "--out", str(site), env=fb_env)
    page = next((site / "runs").glob(f"{pair['run_id']}*.html")).read_text()
    assert "2 × cpu" in page and "global batch 16 (8 per process, learning rates not scaled)" in page


def test_linear_lr_scaling_multiplies_rates_and_schedule() -> None:
    import torch

    from ferbench.config import OPTIM_DEFAULTS
    from ferbench.distributed import World, lr_factor, scale_learning_rates
    from ferbench.optim import optimizer_slot

    def lrs(factor: float) -> list[float]:
        slot = optimizer_slot(torch.nn.Linear(2, 2), {**OPTIM_DEFAULTS, "warmup_epochs": 1.0, "min_lr": 1e-4},
                              steps_per_epoch=4, epochs=3)
        scale_learning_rates({"model": slot}, factor)
        seen = []
        for _ in range(12):
            seen.append(slot.optimizer.param_groups[0]["lr"])
            slot.optimizer.step()
            slot.scheduler.step()
        return seen

    assert lr_factor("linear", World(rank=0, size=4)) == 4.0 and lr_factor("none", World(rank=0, size=4)) == 1.0
    assert np.allclose(lrs(4.0), [4 * lr for lr in lrs(1.0)])


@pytest.mark.slow
def test_killing_rank_1_mid_epoch_and_relaunching_resumes(fb_env: dict[str, str]) -> None:
    args = ["run", *TINY, "--set", "dataset.samples=600", "--set", "dataset.subjects=20", "--set", "train.epochs=5",
            "--set", "train.batch_size=8", "--nproc", "2"]
    mark = uuid.uuid4().hex
    proc = subprocess.Popen([sys.executable, "-m", "ferbench", *args], env={**fb_env, "FB_TEST_MARK": mark},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        rank1 = _process_with({"FB_TEST_MARK": mark, "RANK": "1"})
        checkpoint = wait_for("*-artifacts/*/fold-0.pt", Path(fb_env["FERBENCH_DB"]).parent)  # epoch 1 is done
        os.kill(rank1, signal.SIGKILL)
        proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode != 0
    store = Store(fb_env["FERBENCH_DB"])
    (interrupted,) = store.query("SELECT run_id, status FROM runs")
    assert interrupted["status"] in ("running", "failed") and not store.query("SELECT * FROM folds")
    assert checkpoint.exists()

    resumed = ferbench_json(*args, env=fb_env)
    assert resumed["run_id"] == interrupted["run_id"] and resumed["resumed"] is True
    assert store.query("SELECT status, world_size FROM runs") == [{"status": "completed", "world_size": 2}]
    epochs = store.query("SELECT epoch, count(*) AS n FROM curves WHERE name = 'train_loss' GROUP BY epoch "
                         "ORDER BY epoch")
    assert epochs == [{"epoch": e, "n": 1} for e in range(5)]
    (fold,) = store.query("SELECT n_test FROM folds")
    assert len(store.predictions(resumed["run_id"], 0)[0]) == fold["n_test"]


def _adversarial_steps(rank: int, world_size: int, init_file: str, out: str) -> None:
    """Three steps of a two-slot adversarial toy (a discriminator step on detached fakes, then a generator
    step through the discriminator) on this rank's half of a fixed batch; rank ``r`` of 1 is one process."""
    import torch

    from conftest import step_context
    from ferbench.distributed import current_world
    from ferbench.method import OptimizerSlot

    if world_size > 1:
        torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                                             world_size=world_size)
    torch.manual_seed(0)
    gen, disc = torch.nn.Linear(4, 4), torch.nn.Linear(4, 1)
    unused = torch.nn.Parameter(torch.ones(3))  # in the generator's slot, never in a loss: stays untouched
    slots = {"gen": OptimizerSlot(torch.optim.AdamW([*gen.parameters(), unused], lr=0.1, weight_decay=0.5)),
             "disc": OptimizerSlot(torch.optim.AdamW(disc.parameters(), lr=0.1, weight_decay=0.5))}
    world = current_world()
    ctx = step_context(slots)
    ctx.gradient_sync = world.average_gradients if world.distributed else None
    data = torch.randn(8, 4, generator=torch.Generator().manual_seed(1))[rank::world_size]
    for _ in range(3):
        fake = gen(data)
        ctx.optimize(disc(fake.detach()).mean() - disc(data).mean(), "disc")
        ctx.optimize(-disc(fake).mean(), "gen")
        ctx.end_window()
    torch.save({"gen": gen.state_dict(), "disc": disc.state_dict(), "unused": unused.detach()}, f"{out}.{rank}")
    if world_size > 1:
        torch.distributed.destroy_process_group()


def test_two_optimizer_slots_average_like_one_process(tmp_path: Path) -> None:
    import torch
    import torch.multiprocessing as mp

    mp.spawn(_adversarial_steps, args=(2, str(tmp_path / "init"), str(tmp_path / "ranks")), nprocs=2)
    _adversarial_steps(0, 1, "", str(tmp_path / "single"))
    rank0, rank1, single = (torch.load(tmp_path / name, weights_only=True) for name in ("ranks.0", "ranks.1", "single.0"))
    for part in ("gen", "disc"):
        for name, value in single[part].items():
            assert torch.equal(rank0[part][name], rank1[part][name]), (part, name)  # the ranks never drift apart
            assert torch.allclose(rank0[part][name], value, atol=1e-6), (part, name)
    assert torch.equal(rank0["unused"], torch.ones(3)), "no gradient anywhere: the optimizer skips it"


SWEEP = """
name: six
set: {dataset.samples: 200, dataset.subjects: 10, data.image_size: 16, model.patch_size: 8, model.depth: 1,
      train.epochs: 3, train.batch_size: 16}
grid:
  method: vit-baseline
  dataset: synthfer
  preset: tiny
  seed: [0, 1, 2]
  set: [{}, {optim.lr: 0.002}]
executor: {kind: local, workers: 2, time_minutes: 30}
"""


@pytest.mark.slow
def test_sweep_of_six_runs_survives_a_killed_worker(fb_env: dict[str, str], tmp_path: Path) -> None:
    sweep = tmp_path / "six.yaml"
    sweep.write_text(SWEEP)
    plan = ferbench("sweep", str(sweep), "--dry-run", env=fb_env).stdout
    assert "6 pending" in plan and plan.count("ferbench run --method vit-baseline") == 6
    store = Store(fb_env["FERBENCH_DB"])
    assert not store.path.exists(), "a dry run executes nothing"

    _warm_synthfer(200, 10)
    mark = uuid.uuid4().hex
    proc = subprocess.Popen([sys.executable, "-m", "ferbench", "sweep", str(sweep)], env={**fb_env, "FB_TEST_MARK": mark},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _wait_for_rows(store, "SELECT run_id FROM runs WHERE status = 'completed'")
        os.kill(_process_with({"FB_TEST_MARK": mark, "SUBMITIT_LOCAL_GLOBALID": "0"}), signal.SIGKILL)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 2, out + err
    completed = {row["run_id"]: row["ended_at"] for row in store.query("SELECT run_id, ended_at FROM runs "
                                                                       "WHERE status = 'completed'")}
    assert 1 <= len(completed) < 6

    ferbench("sweep", str(sweep), env=fb_env)
    runs = store.query("SELECT run_id, status, ended_at FROM runs")
    assert len(runs) == 6 and all(row["status"] == "completed" for row in runs), runs  # each run recorded once
    assert all({r["run_id"]: r["ended_at"] for r in runs}[run_id] == ended for run_id, ended in completed.items())
    assert store.query("SELECT count(*) AS n FROM folds") == [{"n": 6}]
    for row in store.query("SELECT run_id, n_test FROM folds"):
        assert len(store.predictions(row["run_id"], 0)[0]) == row["n_test"]
    status = ferbench("sweep", "status", str(sweep), env=fb_env).stdout
    assert status.strip().endswith("6 done, 0 running, 0 partial, 0 failed, 0 pending (of 6 runs)")


PER_FOLD = """
name: folds
set: {dataset.samples: 200, dataset.subjects: 10, data.image_size: 16, model.patch_size: 8, model.depth: 1,
      train.epochs: 1, train.batch_size: 16}
grid: {method: vit-baseline, dataset: synthfer, protocol: random-60-40, preset: tiny}
executor: {kind: slurm, cluster: local, jobs: fold, gpus_per_node: 0, time_minutes: 30}
"""


def test_per_fold_jobs_record_one_run(fb_env: dict[str, str], tmp_path: Path) -> None:
    sweep = tmp_path / "folds.yaml"
    sweep.write_text(PER_FOLD)
    _warm_synthfer(200, 10)
    out = ferbench("sweep", str(sweep), env=fb_env).stdout
    assert "submitted 3 job(s)" in out, out  # a job array of the protocol's three folds, started together
    store = Store(fb_env["FERBENCH_DB"])
    (run,) = store.query("SELECT run_id, status, folds FROM runs")
    assert run["status"] == "completed" and run["folds"] == [0, 1, 2]
    folds = store.query("SELECT fold, n_test FROM folds ORDER BY fold")
    assert [f["fold"] for f in folds] == [0, 1, 2]
    for fold in folds:
        assert len(store.predictions(run["run_id"], fold["fold"])[0]) == fold["n_test"]
    assert "1 done" in ferbench("sweep", "status", str(sweep), env=fb_env).stdout


def test_table_sweep_file_submits_one_slurm_job_array(fb_env: dict[str, str], tmp_path: Path) -> None:
    """The committed MIMIC Table II sweep plans its 54 runs and submits them as one job array. There is no
    SLURM here: sbatch and srun are stand-ins, sbatch keeps the submission script submitit wrote."""
    home, bin_dir = tmp_path / "user", tmp_path / "bin"
    for folder in ("RAF-DB", "FERPlus", "AffectNet"):
        (home / "data" / folder).mkdir(parents=True)
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text('#!/bin/sh\nfor last; do :; done\ncp "$last" "$SCRIPT_COPY"\n'
                                    'echo "Submitted batch job 4242"\n')
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    env = {**fb_env, "HOME": str(home), "PATH": f"{bin_dir}{os.pathsep}{fb_env['PATH']}",
           "SCRIPT_COPY": str(tmp_path / "script")}
    sweep = str(Path(__file__).parents[1] / "sweeps" / "mimic-table2.yaml")
    out = ferbench("sweep", sweep, env=env).stdout
    assert "54 pending (of 54 runs)" in out and "submitted 54 job(s) of 1 process(es) each: 4242 (array)" in out
    script = (tmp_path / "script").read_text()
    for line in ("--array=0-53%12", "--partition=gpu", "--gpus-per-node=1", "--ntasks-per-node=1", "--time=1440",
                 "--cpus-per-task=8", "--mem=64GB"):
        assert f"#SBATCH {line}\n" in script, line
    assert "54 pending" in ferbench("sweep", "status", sweep, env=env).stdout


def test_a_database_per_run_merges_into_the_sweeps(fb_env: dict[str, str], tmp_path: Path) -> None:
    sweep = tmp_path / "own.yaml"
    sweep.write_text(SWEEP.replace("seed: [0, 1, 2]", "seed: 0").replace("set: [{}, {optim.lr: 0.002}]", "set: {}")
                     .replace("train.epochs: 3", "train.epochs: 1")
                     .replace("workers: 2", "workers: 1, db_per_run: true"))
    out = ferbench("sweep", str(sweep), env=fb_env).stdout
    main = Store(fb_env["FERBENCH_DB"])
    (own,) = sorted(main.path.with_name(f"{main.path.stem}-runs").glob("*.duckdb"))
    assert not main.path.exists() and f"ferbench merge {own.parent}/*.duckdb --into {main.path}" in out
    assert "1 done" in ferbench("sweep", "status", str(sweep), env=fb_env).stdout  # found in the run's database
    ferbench("merge", str(own), "--into", str(main.path))
    (run,) = main.query("SELECT run_id, status FROM runs")
    assert run["status"] == "completed"
    (fold,) = main.query("SELECT weights_path FROM folds")
    assert (main.artifacts_dir / fold["weights_path"]).is_file()
    assert "1 done" in ferbench("sweep", str(sweep), env=fb_env).stdout  # nothing runs again


# --- merge ---------------------------------------------------------------------------------------------

def _record(store: Store, run_id: str, folds: dict[int, str], status: str, ended: str,
            n_test: int = 5) -> None:
    """A run row with ``folds`` (fold -> its predictions' seed) recorded as ``ferbench run`` records them,
    each fold's kept weights written in the artifacts folder."""
    from datetime import datetime

    if not (store.path.exists() and store.query("SELECT run_id FROM runs WHERE run_id = ?", [run_id])):
        store.insert_run({"run_id": run_id, "run_key": f"key-{run_id}", "method": "m", "dataset": "d",
                          "protocol": "p", "preset": "tiny", "seed": 0, "config_hash": "c", "manifest_hash": "h",
                          "folds": [0, 1], "status": status, "started_at": datetime(2026, 1, 1)})
    store.update_run(run_id, status=status, ended_at=datetime.fromisoformat(ended))
    for fold, seed in folds.items():
        probabilities = np.random.default_rng(seed).dirichlet(np.ones(3), size=n_test).astype(np.float32)
        weights = store.artifacts_dir / run_id / f"fold-{fold}.safetensors"
        weights.parent.mkdir(parents=True, exist_ok=True)
        weights.write_bytes(f"{run_id}/{fold}/{seed}".encode())
        store.save_fold(run_id, fold, {"selected_epoch": 0, "selection": {"rule": "final"}, "n_train": 10,
                                       "n_val": 0, "n_test": n_test, "train_seconds": 1.0, "eval_seconds": 0.1,
                                       "images_per_second": 10.0, "weights_path": f"{run_id}/fold-{fold}.safetensors"},
                        [f"s{i}" for i in range(n_test)], np.arange(n_test) % 3, probabilities, [(0, "train_loss", 1.0)])
        store.save_fold_metrics(run_id, fold, {"accuracy": float(seed) / 100})


def test_merge_keeps_every_run_once(tmp_path: Path) -> None:
    a, b, c = (Store(tmp_path / name / f"{name}.duckdb") for name in ("a", "b", "c"))
    _record(a, "r1", {0: 1, 1: 2}, "completed", "2026-01-02")
    _record(a, "r2", {0: 3}, "running", "2026-01-02")  # a copy that stopped early ...
    _record(b, "r2", {0: 3, 1: 4}, "completed", "2026-01-03")  # ... and the copy that went on
    _record(b, "r3", {0: 5, 1: 6}, "completed", "2026-01-02")
    _record(a, "r4", {0: 7}, "partial", "2026-01-02")  # per-fold parts recorded in two databases
    _record(b, "r4", {1: 8}, "partial", "2026-01-03")
    _record(c, "r1", {0: 1, 1: 2}, "completed", "2026-01-02")  # the output already holds r1

    for _ in range(2):  # merging again changes nothing
        result = ferbench("merge", str(a.path), str(b.path), "--into", str(c.path))
        assert "4 run(s)" in result.stdout, result.stdout
        runs = {row["run_id"]: row["status"] for row in c.query("SELECT run_id, status FROM runs")}
        assert runs == {"r1": "completed", "r2": "completed", "r3": "completed", "r4": "partial"}
        folds = c.query("SELECT run_id, fold, count(*) AS n FROM folds GROUP BY ALL ORDER BY run_id, fold")
        assert [(f["run_id"], f["fold"], f["n"]) for f in folds] == [
            ("r1", 0, 1), ("r1", 1, 1), ("r2", 0, 1), ("r2", 1, 1), ("r3", 0, 1), ("r3", 1, 1), ("r4", 0, 1),
            ("r4", 1, 1)]
        assert c.query("SELECT count(*) AS n FROM predictions") == [{"n": 8 * 5}]
        assert c.query("SELECT count(*) AS n FROM fold_metrics") == [{"n": 8}]
        for row in c.query("SELECT run_id, fold, weights_path FROM folds"):
            assert (c.artifacts_dir / row["weights_path"]).is_file(), row  # `run:<id>` references still resolve
    _, _, _, merged = c.predictions("r2", 1)
    _, _, _, original = b.predictions("r2", 1)
    assert np.array_equal(merged, original)
    assert (c.artifacts_dir / "r4" / "fold-1.safetensors").read_bytes() == b"r4/1/8"


@pytest.mark.parametrize("text, fragment", [
    ("grid: {dataset: synthfer}", "names no method"),
    ("grid: {method: vit-baseline, dataset: synthfer, preset: tiny}\nexecutor: {kind: pbs}", "kind 'pbs'"),
    ("grid: {method: vit-baseline, dataset: synthfer, seed: [-1]}", "seed -1"),
    ("grid: {method: vit-baseline, dataset: synthfer, presets: tiny}", "unknown key 'presets'"),
    ("grid: {method: vit-baseline, dataset: synthfer, set: {train.epochz: 2}}", "train.epochz"),
])
def test_bad_sweep_files_fail_in_one_line(fb_env: dict[str, str], tmp_path: Path, text: str, fragment: str) -> None:
    sweep = tmp_path / "bad.yaml"
    sweep.write_text(text)
    assert_one_line_error(ferbench("sweep", "status", str(sweep), env=fb_env, check=False), fragment)
