"""Executing a sweep's runs: in this process, in submitit's local worker processes, or as a SLURM job array.

ferbench schedules nothing itself: submitit hands the jobs to SLURM (or starts local processes), and each
job executes its runs through :func:`execute_requests`, one after the other, exactly as ``ferbench run``
does. A job that dies leaves its run resumable (the runner's run key and checkpoints), so starting the
same sweep again finishes what is missing and skips what completed (:func:`ferbench.sweep.run_states`).

A run on several processes (``nproc``) is one job with ``nproc`` tasks (SLURM's ``--ntasks-per-node``, or
submitit's local tasks): each task is one rank, set up from submitit's job environment.
"""
from __future__ import annotations

import sys
import traceback
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from .distributed import session
from .errors import UsageError
from .planning import RunRequest
from .store import Store
from .sweep import DONE, RunState, Sweep

Echo = Callable[[str], None]


@dataclass(frozen=True)
class Outcome:
    """How one run of a job ended: ``completed``, ``partial`` (a per-fold job's part), ``failed``, or ``lost``
    with its job."""

    label: str
    status: str
    run_id: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class Unit:
    """What one job (or a share of a worker) executes: a run, or one fold of it."""

    request: RunRequest
    label: str
    nproc: int


def execute_requests(requests: Sequence[RunRequest], labels: Sequence[str], nproc: int = 1,
                     echo: Echo | None = None) -> list[Outcome]:
    """Execute runs one after the other in this process; a run that fails is reported and the next one
    starts. With ``nproc`` > 1 this process is one of the ``nproc`` tasks of a submitit job (one rank)."""
    say = echo or _print
    if nproc > 1:
        from submitit.helpers import TorchDistributedEnvironment

        TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    from .runner import run

    outcomes = []
    with session(requests[0].device if requests else "auto"):  # one process group for all the runs
        for request, label in zip(requests, labels):
            say(f"sweep: {label}")
            try:
                summary = run(request, echo=say)
            except Exception as exc:  # noqa: BLE001 - the run is marked failed; the worker goes on
                traceback.print_exc(file=sys.stderr)
                outcomes.append(Outcome(label, "failed", detail=f"{type(exc).__name__}: {exc}".splitlines()[0]))
                continue
            outcomes.append(Outcome(label, str(summary.get("status", "completed")), summary.get("run_id")))
    return outcomes


def units(sweep: Sweep, states: Sequence[RunState]) -> list[Unit]:
    """What remains to execute: each run not done, or, with per-fold jobs, each of its folds not recorded."""
    todo = []
    for state in states:
        if state.state == DONE:
            continue
        request = replace(state.run.request, db=sweep.run_db(state.run))  # an absolute path: the same file

        if sweep.executor.kind == "slurm" and sweep.executor.jobs == "fold" and request.fold is None:
            todo += [Unit(replace(request, part_folds=(k,)), f"{state.run.label} fold {k}", state.run.nproc)
                     for k in state.missing_folds]
        else:
            todo.append(Unit(request, state.run.label, state.run.nproc))
    return todo


def execute_sweep(sweep: Sweep, states: Sequence[RunState], echo: Echo, wait: bool = False) -> list[Outcome] | None:
    """Execute what remains of ``sweep``; the outcomes, or None when jobs were submitted without waiting."""
    todo = units(sweep, states)
    if not todo:
        return []
    executor = sweep.executor
    if executor.kind == "slurm":
        return _job_array(sweep, todo, echo, wait or executor.cluster == "local")
    if executor.workers == 1 and all(unit.nproc == 1 for unit in todo):
        return execute_requests([u.request for u in todo], [u.label for u in todo], echo=echo)
    return _local_workers(sweep, todo, echo)


def _local_workers(sweep: Sweep, todo: list[Unit], echo: Echo) -> list[Outcome]:
    """``workers`` submitit local jobs, each executing its share of the runs in turn on its share of the
    devices; runs of another process count go after the previous ones finished."""
    submitit = _submitit()
    executor = sweep.executor
    local = submitit.LocalExecutor(folder=_folder(sweep))
    outcomes: list[Outcome] = []
    for nproc in sorted({unit.nproc for unit in todo}):
        group = [unit for unit in todo if unit.nproc == nproc]
        shares = [group[i::executor.workers] for i in range(executor.workers) if group[i::executor.workers]]
        if executor.devices and len(executor.devices) < len(shares) * nproc:
            raise UsageError(f"executor.devices lists {len(executor.devices)} GPU(s); {len(shares)} worker(s) x "
                             f"{nproc} process(es) need {len(shares) * nproc}")
        jobs = []
        for index, share in enumerate(shares):
            devices = tuple(executor.devices[index * nproc:(index + 1) * nproc])
            local.update_parameters(timeout_min=executor.time_minutes, tasks_per_node=nproc,
                                    gpus_per_node=len(devices), visible_gpus=devices)
            jobs.append((local.submit(execute_requests, [u.request for u in share], [u.label for u in share], nproc),
                         share))
            echo(f"worker {index} (process {jobs[-1][0].job_id}): {len(share)} run(s)"
                 f"{f' on GPU(s) {list(devices)}' if devices else ''}")
        outcomes += _collect(jobs, echo)
    return outcomes


def _job_array(sweep: Sweep, todo: list[Unit], echo: Echo, wait: bool) -> list[Outcome] | None:
    """One job per unit, submitted as a job array per process count; a job that times out or is preempted
    is requeued and resumes (:mod:`ferbench.sweep_requeue`)."""
    submitit = _submitit()
    from .sweep_requeue import RequeuedRuns

    executor = sweep.executor
    try:
        cluster = submitit.AutoExecutor(folder=_folder(sweep), cluster=executor.cluster)
    except RuntimeError as exc:  # e.g. no srun: not on a SLURM machine
        raise UsageError(f"cannot submit to {executor.cluster}: {str(exc).splitlines()[0]} (submit from a SLURM "
                         "login node, or set executor.kind: local)") from None
    jobs = []
    for nproc in sorted({unit.nproc for unit in todo}):
        group = [unit for unit in todo if unit.nproc == nproc]
        parameters: dict[str, Any] = {
            "name": sweep.name, "timeout_min": executor.time_minutes, "nodes": 1, "tasks_per_node": nproc,
            "gpus_per_node": nproc if executor.gpus_per_node is None else executor.gpus_per_node,
            "cpus_per_task": executor.cpus_per_task, "mem_gb": executor.mem_gb,
            **{f"slurm_{key}": value for key, value in executor.slurm.items()}}
        try:
            cluster.update_parameters(**parameters)
        except (NameError, AssertionError, ValueError, TypeError) as exc:
            raise UsageError(f"sweep file {str(sweep.path)!r}: executor: {str(exc).splitlines()[0]}") from None
        submitted = cluster.map_array(RequeuedRuns(), [[u.request] for u in group], [[u.label] for u in group],
                                      [nproc] * len(group))
        jobs += [(job, [unit]) for job, unit in zip(submitted, group)]
        echo(f"submitted {len(submitted)} job(s) of {nproc} process(es) each: {submitted[0].job_id.split('_')[0]}"
             f"{' (array)' if len(submitted) > 1 else ''}; logs in {_folder(sweep).parent}")
    if not wait:
        echo(f"follow them with: ferbench sweep status {sweep.path}")
        return None
    return _collect(jobs, echo)


def _collect(jobs: list[tuple[Any, list[Unit]]], echo: Echo) -> list[Outcome]:
    """Wait for every job; the runs of a job that died are ``lost`` here (the database says how far they got,
    and they resume when the sweep starts again)."""
    outcomes = []
    for job, share in jobs:
        try:
            outcomes += job.result()
        except Exception as exc:  # noqa: BLE001 - killed, timed out, out of memory: all the same here
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            echo(f"job {job.job_id} ended before finishing its runs ({reason[:200]}); see {job.paths.stderr}")
            outcomes += [Outcome(unit.label, "lost", detail=f"job {job.job_id} ended early") for unit in share]
    return outcomes


def _folder(sweep: Sweep) -> Path:
    """submitit's folder: ``executor.folder``, else ``sweeps/<name>`` in the database's artifacts folder."""
    base = Path(sweep.executor.folder).expanduser() if sweep.executor.folder else (
        Store(sweep.db).artifacts_dir / "sweeps" / sweep.name)
    return base / "%j"


def _submitit() -> Any:
    try:
        import submitit
    except ImportError:
        raise UsageError("this sweep's executor needs submitit: pip install 'ferbench[cluster]'") from None
    return submitit


def _print(message: str) -> None:
    print(message, flush=True)
