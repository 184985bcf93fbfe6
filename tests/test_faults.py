"""Fault injection with real processes: kills at random times, planted and truncated checkpoints, a full
disk, read-only and damaged databases, an unusable home, concurrent first runs and one run started twice.

Each scenario ends with the same checks (:func:`assert_sound`): one completed run per run key, each fold
once with as many predictions as its test part holds, nothing recorded before the fault changed, no
temporary file left and nothing for ``ferbench db check`` to report. The runs use the test-only toy
classifier (tests/toyplugin): it goes through the same engine, store and locks as every method, and its
processes start without importing timm, which keeps the module to a few minutes on a loaded 2-core machine.
No assertion depends on timing: kills come at random moments, but what must hold holds at any moment.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import random
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from conftest import assert_one_line_error, ferbench, with_toy_plugin
from ferbench import dbcheck
from ferbench.store import Store

ARGS = ["run", "-m", "toy-classifier", "-d", "synthfer", "--protocol", "random-60-40", "--preset", "tiny",
        "--set", "dataset.samples=240", "--set", "dataset.subjects=12", "--set", "train.epochs=8", "--no-progress"]
#: Seeds the kill times; set FERBENCH_FAULT_SEED to replay another draw.
KILL_SEED = int(os.environ.get("FERBENCH_FAULT_SEED", "10"))
#: Reduced capabilities under which root obeys file permissions like any user (for 444/555 files).
UNPRIVILEGED = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]


def env_for(home: Path, db: Path | None = None) -> dict[str, str]:
    """An environment with its own ferbench home and database, and the toy plugin."""
    env = {**os.environ, "FERBENCH_HOME": str(home), "FERBENCH_DB": str(db or home / "results.duckdb")}
    env.pop("FERBENCH_DATA_ROOT", None)
    return with_toy_plugin(env)


def start(*args: str, env: dict[str, str], prefix: tuple[str, ...] = (), stdout: Any = subprocess.PIPE
          ) -> subprocess.Popen[str]:
    return subprocess.Popen([*prefix, sys.executable, "-m", "ferbench", *args], env=env, stdout=stdout,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)


def wait_until(condition: Callable[[], bool], proc: subprocess.Popen[str], what: str) -> None:
    """Poll ``condition`` while ``proc`` runs; fail with its output if it ends first."""
    while not condition():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the process ended before {what} ({proc.returncode}):\n{out}\n{err}")
        time.sleep(0.01)


def lock_files(store: Store) -> list[Path]:
    return sorted((store.artifacts_dir / "locks").glob("*.lock"))


def lock_taken(store: Store, pid: int) -> bool:
    """Whether process ``pid`` took a run lock (its holder's details stay in the file after it ends)."""
    return any(f'"pid": {pid},' in path.read_text() for path in lock_files(store))


def run_opened(store: Store, pid: int) -> bool:
    """Whether process ``pid`` took a run lock and recorded its run (the lock then names the run id)."""
    return any(f'"pid": {pid},' in text and '"run_id"' in text for text in map(Path.read_text, lock_files(store)))


def completed(store: Store) -> bool:
    return store.path.exists() and bool(store.query("SELECT 1 FROM runs WHERE status = 'completed'"))


# --- what was recorded ------------------------------------------------------------------------------

@dataclass
class FoldRecord:
    ids: list[str]
    labels: np.ndarray
    probabilities: np.ndarray
    metrics: dict[str, float]


def recorded(store: Store) -> dict[tuple[str, int], FoldRecord]:
    """Every recorded fold: its stored predictions and metrics."""
    if not store.path.exists():
        return {}
    metrics: dict[tuple[str, int], dict[str, float]] = {}
    for row in store.query("SELECT run_id, fold, metric, value FROM fold_metrics"):
        metrics.setdefault((row["run_id"], row["fold"]), {})[row["metric"]] = row["value"]
    folds = {}
    for row in store.query("SELECT run_id, fold FROM folds ORDER BY run_id, fold"):
        key = (row["run_id"], row["fold"])
        ids, labels, _, probabilities = store.predictions(*key)
        folds[key] = FoldRecord(ids, labels, probabilities, metrics.get(key, {}))
    return folds


def assert_unchanged(before: dict[tuple[str, int], FoldRecord], store: Store) -> None:
    """Every fold recorded ``before`` is still there, bit for bit."""
    now = recorded(store)
    for key, fold in before.items():
        assert key in now, f"fold {key} was lost"
        assert now[key].ids == fold.ids and np.array_equal(now[key].labels, fold.labels)
        assert np.array_equal(now[key].probabilities, fold.probabilities), f"fold {key} changed"
        assert now[key].metrics == fold.metrics, f"metrics of fold {key} changed"


def assert_sound(store: Store) -> list[dict]:
    """One completed run per run key, each of its folds once with n_test predictions and its metrics, no
    curve point twice, no temporary file, and nothing for ``ferbench db check``; returns the completed runs."""
    runs = store.query("SELECT run_id, run_key, status, folds FROM runs ORDER BY started_at")
    completed = [run for run in runs if run["status"] == "completed"]
    assert all(n == 1 for n in Counter(run["run_key"] for run in completed).values()), runs
    for run in completed:
        folds = store.query("SELECT f.fold, f.n_test, count(p.sample_id) AS n FROM folds f LEFT JOIN predictions p "
                            "USING (run_id, fold) WHERE f.run_id = ? GROUP BY ALL ORDER BY f.fold", [run["run_id"]])
        assert [f["fold"] for f in folds] == sorted(run["folds"]), folds
        assert all(f["n"] == f["n_test"] > 0 for f in folds), folds
        assert not store.query("SELECT fold, epoch, name FROM curves WHERE run_id = ? GROUP BY ALL HAVING count(*) > 1",
                               [run["run_id"]])
    assert not list(store.artifacts_dir.rglob("*.tmp"))
    assert [finding.text for finding in dbcheck.check(store)] == []
    return completed


@dataclass
class Reference:
    """An uninterrupted run: what the interrupted ones must reproduce, and the 'previously recorded' state."""

    home: Path
    store: Store
    run_id: str
    folds: dict[tuple[str, int], FoldRecord]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Reference:
    home = tmp_path_factory.mktemp("reference")
    ferbench(*ARGS, env=env_for(home))
    store = Store(home / "results.duckdb")
    (run,) = assert_sound(store)
    return Reference(home, store, run["run_id"], recorded(store))


def copy_reference(reference: Reference, folder: Path) -> Store:
    """The reference database and its artifacts in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy2(reference.store.path, folder / reference.store.path.name)
    shutil.copytree(reference.store.artifacts_dir, folder / reference.store.artifacts_dir.name)
    return Store(folder / reference.store.path.name)


def same_predictions(store: Store, run_id: str, reference: Reference) -> None:
    for (_, fold), expected in reference.folds.items():
        ids, labels, _, probabilities = store.predictions(run_id, fold)
        assert ids == expected.ids and np.array_equal(labels, expected.labels)
        assert np.array_equal(probabilities, expected.probabilities), f"fold {fold} differs from the uninterrupted run"


# --- kills --------------------------------------------------------------------------------------------

class Payload:
    """Unpickling this runs a shell command (what an attacker would plant as a checkpoint)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


def plant_checkpoints(folder: Path, marker: Path) -> None:
    """Fold 0's checkpoint truncated (a real one when the killed process wrote it) and a code-running pickle
    as its previous checkpoint."""
    import torch

    current = folder / "fold-0.pt"
    if current.exists():
        data = current.read_bytes()
    else:
        buffer = io.BytesIO()
        torch.save({"model": {"w": torch.zeros(256)}, "progress": {"next_epoch": 1}}, buffer)
        data = buffer.getvalue()
    folder.mkdir(parents=True, exist_ok=True)
    current.write_bytes(data[: len(data) // 2])
    (folder / "fold-0.prev.pt").write_bytes(pickle.dumps(Payload(marker)))


def test_random_kills_and_planted_checkpoints_end_in_the_uninterrupted_result(reference: Reference,
                                                                              tmp_path: Path) -> None:
    """Kill 1 comes once the run is recorded; fold 0's checkpoints are then replaced by a truncated file and
    a pickle that would run a command; kills 2 and 3 come at random moments after the process took the run
    lock (a process that completes the run first ends the series). The files are set aside, fold 0 retrains,
    and the result is the uninterrupted run's, bit for bit."""
    rng = random.Random(KILL_SEED)
    home = tmp_path / "a home with spaces"
    store = Store(home / "results.duckdb")
    args = [*ARGS, "--db", str(store.path)]
    env = env_for(home)
    outputs, marker = [], tmp_path / "payload-ran"
    before: dict[tuple[str, int], FoldRecord] = {}
    for kill in range(3):
        proc = start(*args, env=env)
        if kill == 0:
            wait_until(lambda pid=proc.pid: run_opened(store, pid), proc, "it recorded its run")
        else:
            wait_until(lambda pid=proc.pid: lock_taken(store, pid), proc, "it took its run lock")
            time.sleep(rng.uniform(0.0, 1.5))
        proc.send_signal(signal.SIGKILL)
        outputs += proc.communicate()
        if kill == 0:
            (run,) = store.query("SELECT run_id FROM runs")
            folder = store.artifacts_dir / run["run_id"]
            plant_checkpoints(folder, marker)
            pickle.loads(pickle.dumps(Payload(tmp_path / "control")))  # the payload is live when unpickled
            assert (tmp_path / "control").exists()
        assert_unchanged(before, store)
        before = recorded(store)
        if completed(store):
            break
    if not completed(store):
        final = ferbench(*args, env=env)
        outputs += [final.stdout, final.stderr]

    assert not marker.exists(), "a planted checkpoint was unpickled"
    assert (folder / "fold-0.pt.unreadable").exists() and (folder / "fold-0.prev.pt.unreadable").exists()
    assert "is unreadable" in "\n".join(outputs)
    assert_unchanged(before, store)
    (run,) = assert_sound(store)
    same_predictions(store, run["run_id"], reference)
    (row,) = store.query("SELECT command, versions FROM runs")
    assert shlex.split(row["command"]) == ["ferbench", *args]  # quoted: replays despite the spaces
    assert row["versions"]["torch_threads"] and row["versions"]["deterministic_algorithms"] == "False"


# --- concurrency --------------------------------------------------------------------------------------

def test_four_concurrent_first_runs_on_a_fresh_home_all_complete(tmp_path: Path) -> None:
    env = env_for(tmp_path / "fresh")
    procs = [start(*ARGS, "--fold", "0", "--seed", str(seed), env=env) for seed in range(4)]
    results = [(proc.wait(), *proc.communicate()) for proc in procs]
    assert all(code == 0 for code, _, _ in results), results
    store = Store(tmp_path / "fresh" / "results.duckdb")
    assert len(assert_sound(store)) == 4
    assert not list((tmp_path / "fresh" / "cache").rglob("*.tmp"))


def test_the_same_run_started_twice_is_refused_or_waits(tmp_path: Path) -> None:
    """The first process is frozen (SIGSTOP) while it holds the run: a second one is refused and names it, a
    third one with --wait waits, and reports the run once the first completed it instead of repeating it."""
    env = env_for(tmp_path / "home")
    store = Store(tmp_path / "home" / "results.duckdb")
    first = start(*ARGS, env=env)
    wait_until(lambda: run_opened(store, first.pid), first, "it recorded its run")
    first.send_signal(signal.SIGSTOP)
    said = tmp_path / "waiting.txt"
    try:
        with open(said, "w") as stdout:
            waiting = start(*ARGS, "--wait", env=env, stdout=stdout)
        refused = subprocess.run([sys.executable, "-m", "ferbench", *ARGS], env=env, capture_output=True, text=True,
                                 stdin=subprocess.DEVNULL)
        assert_one_line_error(refused, f"process {first.pid} on host", "--wait")
        wait_until(lambda: f"waiting for process {first.pid}" in said.read_text(), waiting, "it waited")
    finally:
        first.send_signal(signal.SIGCONT)
    assert first.wait() == 0
    _, err = waiting.communicate()
    out = said.read_text()
    assert waiting.returncode == 0, err
    assert "waiting for process" in out and "not run again" in out
    (run,) = assert_sound(store)
    assert run["run_id"] in out


def test_four_processes_decode_one_pixel_cache_entry_once(tmp_path: Path) -> None:
    script = (
        "import os, sys, time, numpy as np\n"
        "from ferbench.pixelcache import cached_pixels\n"
        "def read(i):\n"
        "    with open(sys.argv[1], 'a') as log: log.write(f'{os.getpid()} {i}\\n')\n"
        "    time.sleep(0.01)\n"
        "    return np.full((4, 4, 3), i, dtype=np.uint8)\n"
        "pixels = cached_pixels('race', 'k', 30, 8, {'rgb': (read, 3)})\n"
        "assert [int(pixels.arrays['rgb'][i, 0, 0, 0]) for i in range(30)] == list(range(30))\n")
    log = tmp_path / "decoded.txt"
    env = {**os.environ, "FERBENCH_HOME": str(tmp_path / "home")}
    procs = [subprocess.Popen([sys.executable, "-c", script, str(log)], env=env, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    assert all(proc.wait() == 0 for proc in procs), [proc.communicate()[1] for proc in procs]
    decodes = log.read_text().split("\n")[:-1]
    assert len(decodes) == 30 and len({line.split()[0] for line in decodes}) == 1  # one process decoded, once
    assert not list((tmp_path / "home").rglob("*.tmp"))


# --- disks and files ----------------------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path: Path):
    """A 16 MB tmpfs mounted for the test (needs root: skipped otherwise)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root; the full-disk test runs where it can mount one")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path) -> Path:
    """Write a file until the disk is full."""
    filler = folder / "filler"
    with open(filler, "wb") as file:
        try:
            while True:
                file.write(b"\0" * (1 << 16))
                file.flush()
        except OSError:
            pass
    return filler


def test_a_full_disk_is_one_line_and_the_run_resumes_once_there_is_space(reference: Reference,
                                                                         small_disk: Path) -> None:
    store = copy_reference(reference, small_disk)
    env = env_for(reference.home, store.path)
    args = [*ARGS, "--seed", "1"]
    proc = start(*args, env=env)
    wait_until(lambda: run_opened(store, proc.pid), proc, "it recorded its run")
    proc.send_signal(signal.SIGSTOP)
    filler = fill(small_disk)
    proc.send_signal(signal.SIGCONT)
    out, err = proc.communicate()
    result = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    line = assert_one_line_error(result, "the disk is full", str(small_disk), "resumes when the same command")
    assert not list(small_disk.rglob("*.tmp")), line
    filler.unlink()
    assert_unchanged(reference.folds, store)
    (stopped,) = store.query("SELECT run_id, status FROM runs WHERE seed = 1")
    assert stopped["status"] in ("failed", "running")

    resumed = ferbench(*args, "--json", env=env)
    assert stopped["run_id"] in resumed.stdout and '"resumed": true' in resumed.stdout
    assert len(assert_sound(store)) == 2
    assert_unchanged(reference.folds, store)


def unprivileged() -> tuple[str, ...]:
    """The prefix under which a process obeys file permissions (root is made to; others already do)."""
    if os.geteuid() != 0:
        return ()
    if shutil.which("setpriv") is None:
        pytest.skip("root ignores file permissions and setpriv is missing to drop that")
    return tuple(UNPRIVILEGED)


def test_a_read_only_database_is_listed_rendered_and_exported(reference: Reference, tmp_path: Path) -> None:
    prefix = unprivileged()
    folder = tmp_path / "read-only"
    store = copy_reference(reference, folder)
    shutil.rmtree(store.artifacts_dir)
    before = store.path.read_bytes()
    store.path.chmod(0o444)
    folder.chmod(0o555)
    env = env_for(tmp_path / "home", store.path)
    try:
        commands = [("runs",), ("leaderboard", "--out", str(tmp_path / "site")),
                    ("export", "--out", str(tmp_path / "csv"))]
        for args in commands:
            proc = start(*args, env=env, prefix=prefix)
            out, err = proc.communicate()
            assert proc.returncode == 0, f"{args}: {err}"
            if args == ("runs",):
                assert reference.run_id in out
        assert reference.run_id in (tmp_path / "csv" / "runs.csv").read_text()
        assert (tmp_path / "site" / "runs" / f"{reference.run_id}.html").is_file()
    finally:
        folder.chmod(0o755)
    assert store.path.read_bytes() == before and sorted(p.name for p in folder.iterdir()) == [store.path.name]


DAMAGE: dict[str, Callable[[bytes], bytes]] = {
    "random bytes": lambda data: os.urandom(len(data)),
    "truncated": lambda data: data[: len(data) // 3],
    "flipped block": lambda data: data[:8192] + bytes(b ^ 0xFF for b in data[8192:16384]) + data[16384:],
}


@pytest.mark.parametrize("damage, command", list(zip(DAMAGE, ["runs", "leaderboard", "export"], strict=True)))
def test_a_damaged_database_is_one_line(damage: str, command: str, reference: Reference, tmp_path: Path) -> None:
    store = copy_reference(reference, tmp_path / "db")
    damaged = DAMAGE[damage](store.path.read_bytes())
    store.path.write_bytes(damaged)
    extra = {"runs": [], "leaderboard": ["--out", str(tmp_path / "site")], "export": ["--out", str(tmp_path / "x")]}
    result = ferbench(command, *extra[command], env=env_for(tmp_path, store.path), check=False)
    assert_one_line_error(result, str(store.path), "restore a backup")
    assert store.path.read_bytes() == damaged


@pytest.mark.parametrize("kind", ["a file", "a read-only folder"])
def test_an_unusable_home_is_one_line(kind: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    prefix: tuple[str, ...] = ()
    if kind == "a file":
        home.write_text("not a folder")
        expected = [str(home), "is a file, not a folder"]
    else:
        prefix = unprivileged()
        home.mkdir(mode=0o555)
        expected = [str(home), "permission denied"]
    proc = start(*ARGS, env=env_for(home), prefix=prefix)
    out, err = proc.communicate()
    if home.is_dir():
        home.chmod(0o755)
    assert_one_line_error(subprocess.CompletedProcess(proc.args, proc.returncode, out, err), *expected)


def test_a_diverged_fold_is_refused_and_the_run_marked_failed(reference: Reference, tmp_path: Path) -> None:
    store = copy_reference(reference, tmp_path / "db")
    args = ["run", "-m", "toy-diverging", *ARGS[3:]]
    result = ferbench(*args, env=env_for(reference.home, store.path), check=False)
    assert_one_line_error(result, "fold 0", "not finite", "marked failed")
    (run,) = store.query("SELECT run_id, status, error FROM runs WHERE method = 'toy-diverging'")
    assert run["status"] == "failed" and "not finite" in run["error"]
    assert not store.query("SELECT * FROM folds WHERE run_id = ?", [run["run_id"]])
    assert_unchanged(reference.folds, store)


# --- ferbench db check ------------------------------------------------------------------------------

def test_db_check_reports_and_repairs_what_interruptions_leave(reference: Reference, tmp_path: Path) -> None:
    import duckdb

    from ferbench.locks import RunLock

    store = copy_reference(reference, tmp_path / "db")
    run_id, folder = reference.run_id, store.artifacts_dir / reference.run_id
    con = duckdb.connect(str(store.path))
    con.execute("INSERT INTO curves VALUES ('ghost', 0, 0, 'train_loss', 1.0)")
    con.execute("INSERT INTO predictions VALUES (?, 9, 'x', 0, 0, [1.0])", [run_id])
    con.execute("DELETE FROM fold_metrics WHERE run_id = ? AND fold = 1", [run_id])
    con.execute("UPDATE runs SET status = 'running'")
    con.execute("INSERT INTO runs (run_id, run_key, status, host) SELECT 'live', 'live-key', 'running', host FROM runs")
    con.close()
    (folder / "fold-0.safetensors").unlink()
    with open(folder / "fold-1.safetensors", "ab") as file:
        file.write(b"\0")
    gone = subprocess.Popen(["true"])  # a process that has ended: its pid names a killed writer
    gone.wait()
    (folder / f"fold-2.pt.{gone.pid}.tmp").write_bytes(b"partial")
    (folder / "fold-2.pt").write_bytes(b"stale")
    live = RunLock(store.artifacts_dir, "live-key")
    assert live.acquire(blocking=False)  # a process executing run 'live'
    env = env_for(tmp_path, store.path)
    try:
        found = ferbench("db", "check", "--json", env=env, check=False)
        assert found.returncode == 1
        kinds = Counter(f["kind"] for f in json.loads(found.stdout)["findings"])
        assert kinds == {"orphan rows": 2, "fold without metrics": 1, "stuck running": 1, "missing file": 1,
                         "changed file": 1, "leftover file": 2}, found.stdout
        ferbench("db", "check", "--repair", "--dry-run", env=env, check=False)
        assert json.loads(ferbench("db", "check", "--json", env=env, check=False).stdout)["findings"] == \
            json.loads(found.stdout)["findings"]  # the dry run changed nothing
        repaired = ferbench("db", "check", "--repair", env=env, check=False)
        assert repaired.returncode == 1 and "2 left" in repaired.stdout  # the two files need a person
        assert sorted(finding.kind for finding in dbcheck.check(store)) == ["changed file", "missing file"]
    finally:
        live.release()
    assert [f.text for f in dbcheck.check(store) if f.kind == "stuck running"] == \
        ["run live reads running but no process executes it"]  # once its process is gone
    assert {r["run_id"]: r["status"] for r in store.query("SELECT run_id, status FROM runs")} == \
        {run_id: "interrupted", "live": "running"}
    assert recorded(store)[(run_id, 1)].metrics == reference.folds[(run_id, 1)].metrics  # recomputed, identical
    assert not (folder / "fold-2.pt").exists() and not list(folder.glob("*.tmp"))
    assert not store.query("SELECT * FROM curves WHERE run_id = 'ghost'")
