"""The callable a SLURM job of a sweep runs (imported only where submitit is installed).

submitit requeues a :class:`~submitit.helpers.Checkpointable` job that times out or is preempted; the job
that comes back executes the same runs again, and the runner resumes each unfinished one from its last
epoch checkpoint (completed ones are not repeated: the same run key finds them done).
"""
from __future__ import annotations

from typing import Sequence

from submitit.helpers import Checkpointable

from .planning import RunRequest
from .sweep_jobs import Outcome, execute_requests


class RequeuedRuns(Checkpointable):
    """:func:`ferbench.sweep_jobs.execute_requests`, requeued after a time-out or preemption."""

    def __call__(self, requests: Sequence[RunRequest], labels: Sequence[str], nproc: int = 1) -> list[Outcome]:
        return execute_requests(requests, labels, nproc)
